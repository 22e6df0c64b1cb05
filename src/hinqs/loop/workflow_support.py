"""What the Snakefile needs beyond Snakemake itself, kept here so it is tested.

- ``snapshot_config`` (the Snakefile's ``onstart``) writes the validated config
  (defaults filled) where every rule's ``hinqs`` command reads it, and only when its content
  changed: rules name it as a parameter, not an input, and list the config sections they
  depend on as ``params``, so Snakemake's params trigger reruns exactly the steps whose
  settings changed. ``onstart`` runs only when jobs are about to run, so a dry run, a lint
  or a report writes nothing.
- ``gpus_per_nqs_job`` decides whether the NQS rules ask the scheduler for a GPU: with
  ``nqs.device: auto`` only where the cluster's partition declares one.
- ``print_results`` is the Snakefile's ``onsuccess``: one line per system on the console.
- ``iterations_to_run`` walks the chain of checkpoint statuses until one says stop (where
  the files are is :mod:`hinqs.io.layout`'s business); ``per_iteration_inputs`` asks for a
  file of each iteration as soon as that iteration is known to run (the PT2 of iteration
  ``k`` runs beside iteration ``k + 1``, not after the last).
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hinqs.errors import InputError
from hinqs.io.atomic import write_text
from hinqs.io.layout import RunLayout
from hinqs.loop.convergence import read_status
from hinqs.loop.defaults import MAX_AUTO_STRINGS

# Site setting: GPUs each NQS job asks for (0 or 1); unset: decided from the cluster.
SITE_GPUS_ENV = "HINQS_SLURM_GPUS"


def snapshot_config(config: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML at ``path`` unless the file already holds exactly that."""
    path = Path(path)
    text = yaml.safe_dump(config, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        write_text(path, text)
    return path


def partition_has_gpus(sinfo_output: str, partition: str | None) -> bool | None:
    """Whether ``partition`` (None: the default one, marked ``*``) has a node with a GPU gres.

    ``sinfo_output`` is ``sinfo --noheader --format='%P %G'``: one line per partition and
    node configuration, e.g. ``debug* (null)`` or ``gpu gpu:a100:4(S:0-1)``. None when the
    partition is not listed (then nothing can be concluded).
    """
    found = False
    has_gpu = False
    for line in sinfo_output.splitlines():
        fields = line.split()
        if not fields:
            continue
        name, gres = fields[0], " ".join(fields[1:])
        is_default = name.endswith("*")
        if (partition is None and not is_default) or (partition is not None and name.rstrip("*") != partition):
            continue
        found = True
        has_gpu = has_gpu or any(item.startswith("gpu") for item in gres.split(","))
    return has_gpu if found else None


def slurm_partition_has_gpus(partition: str | None, timeout: float = 20) -> bool | None:
    """Ask SLURM (``sinfo``) whether the partition jobs go to has GPUs; None without SLURM."""
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%P %G"], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return partition_has_gpus(proc.stdout, partition or None)


def _local_gpu_present() -> bool:
    """An NVIDIA device node on this machine (torch is not imported while the DAG is built)."""
    return Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()


def gpus_per_diagonalize_job(
    sqd: dict[str, Any], parallel: dict[str, Any], environ: Mapping[str, str] | None = None
) -> int:
    """GPUs the diagonalize rule declares (``resources: gpu``, ``sbatch --gpus``) for ``sqd.device``.

    None for the numba kernel (``cpu``, or any solver but ``direct``). Otherwise, where
    :func:`gpus_per_nqs_job` would ask for one: one GPU per rank for the ``mpi`` and
    ``distributed`` executors (a rank takes its node's GPUs in turn,
    :func:`hinqs.sqd.device_check.resolve_device`), one for the process workers, which share it.
    """
    if sqd["solver"] != "direct" or not gpus_per_nqs_job(sqd["device"], environ):
        return 0
    return int(parallel["workers"]) if parallel["executor"] in ("mpi", "distributed") else 1


def gpus_per_pt2_job(pt2: dict[str, Any], parallel: dict[str, Any], environ: Mapping[str, str] | None = None) -> int:
    """GPUs the PT2 rule declares for ``pt2.device``: none for ``cpu``; else, where
    :func:`gpus_per_nqs_job` would ask for one, one per rank when the PT2 runs over the
    ``distributed`` executor's ranks (:func:`pt2_launcher`), else one."""
    if not gpus_per_nqs_job(pt2["device"], environ):
        return 0
    return int(parallel["workers"]) if parallel["executor"] == "distributed" else 1


def gpus_per_nqs_job(device: str, environ: Mapping[str, str] | None = None) -> int:
    """GPUs each NQS rule declares (``resources: gpu``), which the SLURM plugin turns into ``--gpus``.

    ``cpu``: none. ``cuda``: one, as asked. ``auto``: the site setting ``HINQS_SLURM_GPUS``
    when set; else one exactly when SLURM's partition for the jobs (``HINQS_SLURM_PARTITION``,
    else the default partition) has a node declaring a ``gpu`` gres -- asking a CPU-only
    cluster for a GPU makes sbatch refuse the job; else, without SLURM, one when this machine
    has an NVIDIA device (locally the resource only limits concurrency, under
    ``--resources gpu=N``). The job itself picks CUDA or the CPU from what torch sees.
    """
    environ = os.environ if environ is None else environ
    if device == "cpu":
        return 0
    site = environ.get(SITE_GPUS_ENV, "").strip()
    if site:
        if site not in {"0", "1"}:
            raise InputError(f"{SITE_GPUS_ENV} must be 0 or 1 (GPUs per NQS job), not {site!r}")
        return int(site)
    if device != "auto":
        return 1
    has = slurm_partition_has_gpus(environ.get("HINQS_SLURM_PARTITION"))
    if has is None:
        has = _local_gpu_present()
    return int(has)


def _system(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in config["systems"] if s["name"] == name)


# System keys that do not change the Hamiltonian: a user's reference energy (the summary
# reads it) and the close-atoms override (a check only, made when the run is planned).
NOT_HAMILTONIAN_KEYS = frozenset({"reference", "allow_close_atoms"})


def prepare_inputs(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The system keys the Hamiltonian depends on (the prepare rule's params): a changed
    user reference reruns the summary only, not the integrals and every iteration after, and
    a results folder made before ``allow_close_atoms`` existed is not recomputed for it."""
    return {key: value for key, value in _system(config, name).items() if key not in NOT_HAMILTONIAN_KEYS}


def fcidump_input(config: dict[str, Any], name: str) -> list[str]:
    """The system's FCIDUMP file as the prepare rule's input ([] for a geometry system)."""
    path = _system(config, name).get("fcidump")
    return [str(path)] if path else []


def reference_options(config: dict[str, Any], name: str) -> str:
    """``hinqs summarize`` options for the system's user-supplied reference ('' when none)."""
    reference = _system(config, name).get("reference")
    if not reference:
        return ""
    source = shlex.quote(str(reference["source"]))
    return f"--reference-energy {float(reference['energy'])!r} --reference-source {source}"


def print_results(results: RunLayout, systems: list[str]) -> None:
    """One line per system whose summary exists: energy, error, subspace, iterations, stop, time."""
    from hinqs.summary import result_lines

    for line in result_lines(results, systems):
        print(line, flush=True)


def iterations_to_run(status_path_of: Callable[[int], str], max_iterations: int) -> int:
    """Number of iterations until a status says stop; ``status_path_of(k)`` may raise
    Snakemake's IncompleteCheckpointException when that status does not exist yet."""
    for k in range(1, max_iterations + 1):
        if read_status(status_path_of(k)).stop:
            return k
    return max_iterations


def iteration_runs(k: int, status_path_of: Callable[[int], str]) -> bool:
    """Whether iteration ``k`` runs: no status before it says stop.

    Reads only the statuses of iterations ``1..k-1``, so that a file wanted for iteration
    ``k`` alone (its PT2) is known as soon as ``k`` is, not once the last iteration is:
    ``status_path_of(j)`` raises Snakemake's IncompleteCheckpointException for a status not
    written yet, which makes the asking rule wait for that check and ask again.
    """
    return not any(read_status(status_path_of(j)).stop for j in range(1, k))


def per_iteration_inputs(
    name: str,
    max_iterations: int,
    status_path_of: Callable[[str, int], str],
    path_of: Callable[[str, int], str],
) -> dict[str, Callable[[Any], list[str]]]:
    """Named input functions ``{name}_001``... of a rule with a ``system`` wildcard: the one of
    iteration ``k`` gives ``[path_of(system, k)]`` if that iteration runs, else nothing.

    Why one function per iteration: Snakemake resolves each input function on its own, so the
    PT2 of iteration 1 is asked for from the start and that of ``k`` once iteration ``k - 1``'s
    check said go on (it then runs as soon as ``k``'s state exists, beside ``k + 1``'s steps);
    a single function listing every iteration would name none of them until the last check.
    """

    def one(k: int) -> Callable[[Any], list[str]]:
        def paths(wildcards: Any) -> list[str]:
            system = wildcards.system
            runs = iteration_runs(k, lambda j: status_path_of(system, j))
            return [path_of(system, k)] if runs else []

        return paths

    return {f"{name}_{k:03d}": one(k) for k in range(1, max_iterations + 1)}


def diagonalize_launcher(parallel: dict[str, Any]) -> str:
    """The command that runs ``hinqs`` for the diagonalize (and verify) step.

    For ``executor: mpi`` the step runs under an MPI launcher with mpi4py.futures' server
    mode: rank 0 runs ``hinqs`` and dispatches batches, ranks 1..workers solve them. For
    ``executor: distributed`` it runs SPMD on ``workers`` ranks, every batch on all of them
    (``python -m mpi4py`` aborts every rank when one fails, instead of leaving them waiting).
    """
    if parallel["executor"] == "distributed":
        return f"{parallel['mpi_launcher'].format(ranks=int(parallel['workers']))} python -m mpi4py -m hinqs"
    if parallel["executor"] != "mpi":
        return "hinqs"
    ranks = int(parallel["workers"]) + 1
    launcher = parallel["mpi_launcher"].format(ranks=ranks)
    return f"{launcher} python -m mpi4py.futures -m hinqs"


def verify_launcher(parallel: dict[str, Any]) -> str:
    """The command that runs ``hinqs verify``: the diagonalize step's, except for ``distributed``.

    ``verify`` runs the whole loop in one process (sampling and training included), which
    cannot run SPMD; there the distributed executor runs on one rank, the products unsplit.
    """
    return "hinqs" if parallel["executor"] == "distributed" else diagonalize_launcher(parallel)


def pt2_launcher(parallel: dict[str, Any]) -> str:
    """The command that runs ``hinqs pt2``: under the MPI launcher on ``workers`` ranks for the
    ``distributed`` executor (each rank sums a share of the rows, :mod:`hinqs.subspace.pt2_ranks`),
    else one process (the ``mpi`` executor's ranks solve batches; a PT2 is one sum)."""
    return diagonalize_launcher(parallel) if parallel["executor"] == "distributed" else "hinqs"


def diagonalize_threads(parallel: dict[str, Any]) -> int:
    """Cores the diagonalize step occupies (:func:`hinqs.loop.settings.step_cores`)."""
    from hinqs.loop.settings import step_cores

    return step_cores(parallel["executor"], parallel["workers"], parallel["threads_per_worker"])


def _largest_batch(sqd: dict[str, Any], parallel: dict[str, Any], max_strings: int | None = None) -> int:
    """The largest product dimension one batch of this config can diagonalise.

    A batch of S determinants has at most 2S distinct strings per spin (closed shells merge
    both spins' strings), so its subspace holds at most (2S)^2 determinants, or the cap the
    step derives from the config (``sqd.max_dimension``, :func:`hinqs.sqd.dimension.resolve_max_dimension`)
    when that is smaller. ``max_strings`` is the config's string cap (``subspace.max_strings``);
    without one the cap is derived and may grow (:mod:`hinqs.loop.growth`) up to the batch cap.
    """
    from hinqs.sqd.dimension import resolve_max_dimension

    per_batch = sqd.get("samples_per_batch")
    cap = resolve_max_dimension(sqd.get("max_dimension"), sqd["solver"], sqd.get("memory_mb"), int(parallel["workers"]),
                                parallel.get("executor"))  # fmt: skip
    if per_batch:
        largest = (2 * int(per_batch)) ** 2
    elif max_strings:
        largest = int(max_strings) ** 2
    else:  # one batch of the whole subspace, which may grow up to the batch cap
        largest = cap or MAX_AUTO_STRINGS**2
    return largest if cap is None else min(largest, cap)


def fixed_strings(config: dict[str, Any]) -> int | None:
    """The string cap memory requests are sized for: the config's own when it never grows,
    else None (a derived or growing cap reaches the batch cap, :func:`_largest_batch`)."""
    given = config["subspace"]["max_strings"]
    grow = config["accuracy"]["grow"]
    return None if given is None or grow else int(given)


def _pt2_need_mb(sqd: dict[str, Any], parallel: dict[str, Any], max_strings: int | None) -> float:
    """What one PT2 process holds (MB): the largest state a batch can hold and its tables."""
    from hinqs.sqd.dimension import PT2_BASELINE_MB, PT2_BYTES_PER_DETERMINANT

    return PT2_BASELINE_MB + PT2_BYTES_PER_DETERMINANT * _largest_batch(sqd, parallel, max_strings) / 1e6


def _per_cpu(need_mb: float, parallel: dict[str, Any]) -> int:
    """A rank's need (MB) as a per-CPU request for the ``distributed`` executor's ranks (each on
    ``threads_per_worker`` CPUs, wherever its node), else 0: the rule then asks ``mem_mb``."""
    from hinqs.sqd.dimension import USABLE_FRACTION

    if parallel.get("executor") != "distributed":
        return 0
    return math.ceil(need_mb / USABLE_FRACTION / int(parallel["threads_per_worker"]))


def pt2_mem_mb(sqd: dict[str, Any], parallel: dict[str, Any], max_strings: int | None = None) -> int:
    """Memory (MB) of the PT2 step: it streams the connected product row by row from the
    state's own links (:mod:`hinqs.subspace.pt2`), so it grows with the largest state a batch
    can hold, never with ``pt2.max_dimension`` (which only decides complete or sampled)."""
    from hinqs.sqd.dimension import USABLE_FRACTION

    return int(_pt2_need_mb(sqd, parallel, max_strings) / USABLE_FRACTION + 0.5)


def pt2_mem_per_cpu(sqd: dict[str, Any], parallel: dict[str, Any], max_strings: int | None = None) -> int:
    """Memory (MB) per CPU of the PT2 step over MPI ranks (``distributed``), else 0 (``mem_mb``):
    every rank holds the whole state and the operator's tables, one process's need."""
    return _per_cpu(_pt2_need_mb(sqd, parallel, max_strings), parallel)


def diagonalize_mem_mb(sqd: dict[str, Any], parallel: dict[str, Any], max_strings: int | None = None) -> int:
    """Memory (MB) to ask the scheduler for one diagonalize step, from the step's own estimate.

    Each worker may solve one batch of the largest dimension the config allows
    (:func:`_largest_batch`, :func:`hinqs.sqd.dimension.estimate_mb`); for the ``distributed``
    executor each rank holds its share of one batch spread over all of them. The parent holds
    the subspace and the merged state. The step, granted this as ``SLURM_MEM_PER_NODE``, then
    finds that every batch the request was sized for fits.
    """
    from hinqs.sqd.dimension import PARENT_MB, USABLE_FRACTION, batch_ranks, estimate_mb

    largest = _largest_batch(sqd, parallel, max_strings)
    workers = int(parallel["workers"])  # the step divides its memory among the configured workers
    ranks = batch_ranks(parallel.get("executor"), workers)
    need = PARENT_MB + workers * estimate_mb(largest, sqd["solver"], ranks)
    return int(need / USABLE_FRACTION + 0.5)


def diagonalize_mem_per_cpu(sqd: dict[str, Any], parallel: dict[str, Any], max_strings: int | None = None) -> int:
    """Memory (MB) per CPU to ask the scheduler for a batch spread over MPI ranks (``distributed``),
    else 0 (the step asks ``mem_mb`` for the node instead).

    Each rank needs its share of the largest batch (:func:`hinqs.sqd.dimension.estimate_mb`
    with the ranks) and rank 0 the step's own data as well; SLURM grants ``--mem-per-cpu``
    times a task's CPUs (``threads_per_worker``) to each rank wherever its node, which is what
    the step reads back (:func:`hinqs.sqd.dimension.rank_memory_mb`). So a run over several
    nodes (``--set-resources diagonalize:mpi=srun diagonalize:tasks=...``, docs/how-to/slurm.md)
    asks per rank, not the sum of all ranks on one node.
    """
    from hinqs.sqd.dimension import PARENT_MB, estimate_mb

    rank = estimate_mb(_largest_batch(sqd, parallel, max_strings), sqd["solver"], int(parallel["workers"])) + PARENT_MB
    return _per_cpu(rank, parallel)
