# Paths (from hinqs.io.layout), config snapshot and the iteration walk shared by all rules.
from pathlib import Path

from hinqs.io.layout import RunLayout
from hinqs.loop.convergence import ITERATION_CEILING
from hinqs.loop.workflow_support import (
    gpus_per_diagonalize_job,
    gpus_per_nqs_job,
    gpus_per_pt2_job,
    iterations_to_run,
    per_iteration_inputs,
    fcidump_input,
    print_results,
    prepare_inputs,
    reference_options,
    snapshot_config,
)

RESULTS = RunLayout.at(config["results_dir"])
# Written by the Snakefile's onstart handler (a dry run writes nothing).
RUN_CONFIG = str(RESULTS.config_snapshot)
SYSTEMS = [s["name"] for s in config["systems"]]
# The most iterations planned; the check of each stops the loop (iterations.max null: derived).
MAX_ITER = config["iterations"]["max"] or ITERATION_CEILING
HINQS_ENV = "../envs/hinqs.yaml"
# torch + the model, the sampler frontier (bounded by nqs.max_batch) and the teacher.
NQS_MEM_MB = 4000
# nqs.device auto asks for a GPU only where the cluster (partition) has one.
USE_GPU = gpus_per_nqs_job(config["nqs"]["device"])
# sqd.device cuda/auto: a GPU per rank of a spread or MPI batch, one for the process workers.
SOLVE_GPUS = gpus_per_diagonalize_job(config["sqd"], config["parallel"])
PT2_GPUS = gpus_per_pt2_job(config["pt2"], config["parallel"])
# Output patterns: {system} and {k} are wildcards.
SYS = RESULTS.system("{system}")
IT = SYS.iteration("{k}")


wildcard_constraints:
    system="|".join(SYSTEMS),
    k=r"\d{3}",


NATURAL_AFTER = config["natural_orbitals"]["after"]


def hamiltonian_of(system, k):
    """The Hamiltonian folder iteration k of a system works in (prepare's, or the natural one)."""
    return str(RESULTS.system(system).hamiltonian_at(k, NATURAL_AFTER))


def hamiltonian_meta(w):
    """meta.json of the Hamiltonian iteration w.k works in: the rule waits for that folder."""
    return str(Path(hamiltonian_of(w.system, w.k)) / "meta.json")


def sysdir(system):
    return str(RESULTS.system(system).root)


def files(system, k):
    """The files of iteration k (an int or a wildcard string) of a system."""
    return RESULTS.system(system).iteration(int(k))


def status_of(system, k):
    """Iteration k's status; raises IncompleteCheckpointException until its check ran."""
    return checkpoints.check.get(system=system, k=f"{k:03d}").output.status


def n_iterations(system):
    return iterations_to_run(lambda k: status_of(system, k), MAX_ITER)


def all_targets():
    targets = expand(str(SYS.summary), system=SYSTEMS)
    if len(SYSTEMS) > 1:
        targets.append(str(RESULTS.scan_csv))
    return targets
