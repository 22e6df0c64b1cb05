"""Where one `hinqs train` step spends its seconds, on a run's real files.

Runs the command in-process with timers around its phases (reading the checkpoint and the
state, the first-order determinants, the evaluations, the epochs, the collapse check, the
checkpoint write) and prints one line per phase, so a change to the training step can be
judged on the workload it is for (e.g. the 52-qubit N2/cc-pVDZ run)::

    OMP_NUM_THREADS=1 python benchmarks/profile_train.py --json phases.json -- \\
        --config results/.hinqs/config.yaml --hamiltonian results/n2/hamiltonian \\
        --model results/n2/iter_002/model.pt --teacher results/n2/iter_003/sqd/state.npz \\
        --previous-samples results/n2/iter_003/samples.npz --iteration 3 \\
        --out /tmp/model.pt --history /tmp/train.json

Phases nest (the first-order determinants are computed while the teacher is read, the
epochs and evaluations inside the trainer); "other" is the total less the top-level phases.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

SECONDS: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)

# (module, attribute, phase, top level): what is timed.
PHASES = [
    ("hinqs.steps.nqs", "_load", "load checkpoint", True),
    ("hinqs.nqs.teacher", "read_teacher", "read teacher (incl. first order)", True),
    ("hinqs.steps.nqs", "_first_order", "  first-order determinants", False),
    ("hinqs.nqs.trainer", "train", "trainer", True),
    ("hinqs.nqs.trainer", "evaluate", "  evaluate", False),
    ("hinqs.nqs.trainer", "_epoch", "  epochs", False),
    ("hinqs.nqs.diagnostics", "previous_summary", "previous samples (collapse check)", True),
    ("hinqs.nqs.checkpoint", "save_checkpoint", "save checkpoint", True),
]


def _timed(function: Callable[..., Any], phase: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[phase] += time.perf_counter() - started
            CALLS[phase] += 1

    return wrapper


def _patch() -> None:
    import importlib

    for module_name, attribute, phase, _ in PHASES:
        module = importlib.import_module(module_name)
        setattr(module, attribute, _timed(getattr(module, attribute), phase))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the phases here")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the `hinqs train` arguments")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    from hinqs.cli import main as hinqs_main

    _patch()
    imported = time.perf_counter() - started
    code = hinqs_main(["train", *[a for a in args.train_args if a != "--"]])
    total = time.perf_counter() - started
    top = sum(SECONDS[phase] for _, _, phase, is_top in PHASES if is_top)
    rows = {"imports": imported, **{phase: SECONDS[phase] for _, _, phase, _ in PHASES}}
    rows["other"] = total - imported - top
    rows["total"] = total
    for phase, seconds in rows.items():
        calls = f" ({CALLS[phase]} calls)" if CALLS.get(phase, 0) > 1 else ""
        print(f"{phase:<40s} {seconds:8.2f} s{calls}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seconds": rows, "calls": dict(CALLS)}, handle, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
