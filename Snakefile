# HI-NQS-SQD: prepare -> initial model -> per iteration (sample -> subspace -> diagonalize ->
# train -> check) until the energy converges; then summary, plots and report.
# Thin by design: every rule calls the `hinqs` command; the logic lives in src/hinqs.
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The iteration chain is walked recursively when the DAG is built.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/nqs.smk"
include: "workflow/rules/sqd.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/verify.smk"


rule all:
    input:
        all_targets(),
    default_target: True
