# Paths (from hinqs.io.layout), config snapshot and the iteration walk shared by all rules.
from hinqs.config import validate_config
from hinqs.io.layout import RunLayout
from hinqs.workflow_support import iterations_to_run, snapshot_config

config = validate_config(config, "config")  # the checks a schema cannot express
RESULTS = RunLayout.at(config["results_dir"])
RUN_CONFIG = str(snapshot_config(config, RESULTS.config_snapshot))
SYSTEMS = [s["name"] for s in config["systems"]]
MAX_ITER = config["iterations"]["max"]
HINQS_ENV = "../envs/hinqs.yaml"
# torch + the model, the sampler frontier (bounded by nqs.max_batch) and the teacher.
NQS_MEM_MB = 4000
USE_GPU = 0 if config["nqs"]["device"] == "cpu" else 1
# Output patterns: {system} and {k} are wildcards.
SYS = RESULTS.system("{system}")
IT = SYS.iteration("{k}")


wildcard_constraints:
    system="|".join(SYSTEMS),
    k=r"\d{3}",


def sysdir(system):
    return str(RESULTS.system(system).root)


def files(system, k):
    """The files of iteration k (an int or a wildcard string) of a system."""
    return RESULTS.system(system).iteration(int(k))


def n_iterations(system):
    return iterations_to_run(
        lambda k: checkpoints.check.get(system=system, k=f"{k:03d}").output.status, MAX_ITER
    )


def all_targets():
    targets = expand(str(SYS.summary), system=SYSTEMS)
    if len(SYSTEMS) > 1:
        targets.append(str(RESULTS.scan_csv))
    return targets
