# Paths, config snapshot and the iteration walk shared by all rules.
from hinqs.config import validate_config
from hinqs.workflow_support import iteration_name, iterations_to_run, snapshot_config

config = validate_config(config, "config")  # the checks a schema cannot express
RESULTS = config["results_dir"]
RUN_CONFIG = str(snapshot_config(config, f"{RESULTS}/.hinqs/config.yaml"))
SYSTEMS = [s["name"] for s in config["systems"]]
SYSTEM_BY_NAME = {s["name"]: s for s in config["systems"]}
MAX_ITER = config["iterations"]["max"]
HINQS_ENV = "../envs/hinqs.yaml"
# torch + the model, the sampler frontier (bounded by nqs.max_batch) and the teacher.
NQS_MEM_MB = 4000
USE_GPU = 0 if config["nqs"]["device"] == "cpu" else 1


wildcard_constraints:
    system="|".join(SYSTEMS),
    k=r"\d{3}",


def sysdir(system):
    return f"{RESULTS}/{system}"


def iterdir(system, k):
    return f"{RESULTS}/{system}/{iteration_name(int(k))}"


def prev(k):
    return iteration_name(int(k) - 1)


def n_iterations(system):
    return iterations_to_run(
        lambda k: checkpoints.check.get(system=system, k=f"{k:03d}").output.status, MAX_ITER
    )


def all_targets():
    targets = expand(f"{RESULTS}/{{system}}/summary.json", system=SYSTEMS)
    if len(SYSTEMS) > 1:
        targets.append(f"{RESULTS}/scan.csv")
    return targets
