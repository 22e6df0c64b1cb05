# HI-NQS-SQD: prepare -> initial model -> per iteration (sample -> subspace -> diagonalize ->
# train -> check) until the energy converges; then summary, plots and report.
# Thin by design: every rule calls the `hinqs` command; the logic lives in src/hinqs.
import atexit
import sys

from snakemake.utils import min_version

from hinqs.loop.console import answer_when_up_to_date, print_failures, put_own_bin_on_path
from hinqs.loop.planning import checked_or_exit

min_version("9.0")

# The iteration chain is walked recursively when the DAG is built.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
# `.venv/bin/snakemake` works without activating the environment: the rules find its `hinqs`.
put_own_bin_on_path()


# The config file given is the run's whole config: `--configfile X` reads X alone (schema
# defaults and size-derived values fill what X leaves out), never X merged over the default
# config; only a run given no config file at all (plain `snakemake`, `make run`) reads the
# default one. `--config KEY=VALUE` overrides apply on top in both cases.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# One line and exit 2 for anything a step would refuse (hinqs.loop.planning), before any job
# and instead of Snakemake's `validate`, which prints the whole schema for one wrong key.
# A SLURM job re-reading this file skips the chemistry: the workflow's process checked it.
config = checked_or_exit(
    config,
    ", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml",
    chemistry=not (workflow.remote_exec or workflow.subprocess_exec),
)


# Steps that read and write a few small JSON/CSV files run in the workflow's own process, not
# as cluster jobs: a SLURM job each would cost a queue wait and about 10 s of start-up for
# milliseconds of work (measured on the test cluster: 5 of the default config's 27 jobs).
localrules:
    check,
    summarize,
    scan,


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/nqs.smk"
include: "workflow/rules/sqd.smk"
include: "workflow/rules/orbitals.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/verify.smk"


# Written when jobs are about to run, never while the DAG is only planned (-n, --lint,
# --report): every rule's `hinqs` command reads the snapshot.
onstart:
    snapshot_config(config, RESULTS.config_snapshot)


# The answer on the screen: one line per system (same as `hinqs summarize results`), also
# when a finished workflow is rerun and Snakemake calls no hook ("Nothing to be done").
ANSWERED = {}
# A job that a cluster executor runs is a Snakemake of its own (remote or subprocess mode): it
# runs these hooks too, and its output reaches the user's terminal; only the workflow the user
# started speaks.
MAIN = not (workflow.remote_exec or workflow.subprocess_exec)


onsuccess:
    ANSWERED["done"] = True
    if MAIN:
        print_results(RESULTS, SYSTEMS)


# The reason of each failed job (the line its `hinqs` command wrote) and where its log is.
onerror:
    ANSWERED["done"] = True
    if MAIN:
        print_failures(log)


if MAIN:
    atexit.register(
        answer_when_up_to_date,
        workflow,
        [RESULTS.system(s).summary for s in SYSTEMS],
        lambda: print_results(RESULTS, SYSTEMS),
        ANSWERED,
    )


rule all:
    input:
        all_targets(),
    default_target: True
