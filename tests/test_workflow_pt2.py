"""The PT2 of iteration k is scheduled beside iteration k + 1, not after the last iteration.

Snakemake learns the iteration count one checkpoint at a time; a PT2 wanted only by the
summary used to wait for the last check. ``per_iteration_inputs`` asks for each iteration's
PT2 as soon as that iteration is known to run.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from workflow_helpers import SCAN_CONFIG, make_workdir, one_system, run_snakemake, summary

from hinqs.loop.convergence import next_status, write_status
from hinqs.loop.workflow_support import iteration_runs, per_iteration_inputs


class Incomplete(Exception):
    """Stands in for Snakemake's IncompleteCheckpointException: that status is not written yet."""


def _statuses(tmp_path, energies: list[float], max_iterations: int = 10):
    """Write the statuses of the given energies; return status_path_of(system, k), raising past them."""
    status = None
    for k, energy in enumerate(energies, start=1):
        status = next_status(status, k, energy, tol=1e-6, window=1, max_iterations=max_iterations)
        write_status(tmp_path / f"{k}.json", status)

    def status_path_of(_system: str, k: int) -> str:
        if k > len(energies):
            raise Incomplete(k)
        return str(tmp_path / f"{k}.json")

    return status_path_of


def test_iteration_k_is_known_from_the_statuses_before_it(tmp_path):
    of = _statuses(tmp_path, [-1.0, -1.5])
    assert iteration_runs(1, lambda j: of("s", j))  # reads nothing: iteration 1 always runs
    assert iteration_runs(3, lambda j: of("s", j))  # 1 and 2 said go on; 3's own status is not needed
    with pytest.raises(Incomplete):
        iteration_runs(4, lambda j: of("s", j))  # 3's check has not run: Snakemake waits for it


def test_each_iteration_s_input_waits_only_for_the_checks_before_it(tmp_path):
    """Catches one function for all iterations again: iteration 1's PT2 would wait for every check."""
    of = _statuses(tmp_path, [-1.0])  # iteration 1 checked, not converged
    inputs = per_iteration_inputs("pt2", 4, of, lambda system, k: f"{system}/{k}/pt2.json")
    assert list(inputs) == ["pt2_001", "pt2_002", "pt2_003", "pt2_004"]
    wildcards = SimpleNamespace(system="lih")
    assert inputs["pt2_001"](wildcards) == ["lih/1/pt2.json"]
    assert inputs["pt2_002"](wildcards) == ["lih/2/pt2.json"]
    with pytest.raises(Incomplete):
        inputs["pt2_003"](wildcards)


def test_iterations_after_a_stop_want_nothing(tmp_path):
    of = _statuses(tmp_path, [-1.0, -1.5, -1.5])  # converged at 3 (window 1)
    inputs = per_iteration_inputs("pt2", 5, of, lambda system, k: f"{k}")
    got = [inputs[f"pt2_{k:03d}"](SimpleNamespace(system="s")) for k in range(1, 6)]
    assert got == [["1"], ["2"], ["3"], [], []]


_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FIELD = re.compile(r"^\s+(jobid|wildcards): (.*)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")


def job_events(log: str) -> list[tuple[str, str, str | None]]:
    """Snakemake's log as ordered ``(event, rule, iteration)``, event 'start' or 'end'.

    A job's block is its header (``localrule pt2:``) and indented fields (``jobid: 12``,
    ``wildcards: system=lih_r1, k=001``); it ends with ``Finished jobid: 12 (Rule: pt2)``.
    """
    events: list[tuple[str, str, str | None]] = []
    jobs: dict[str, tuple[str, str | None]] = {}
    block: dict[str, str] | None = None
    for line in [*log.splitlines(), ""]:
        if block is not None and (field := _FIELD.match(line)):
            block[field.group(1)] = field.group(2)
            continue
        if block is not None and "jobid" in block and not line.startswith(" "):
            k = re.search(r"\bk=(\d{3})\b", block.get("wildcards", ""))
            jobs[block["jobid"]] = (block["rule"], k.group(1) if k else None)
            events.append(("start", *jobs[block["jobid"]]))
            block = None
        if header := _HEADER.match(line):
            block = {"rule": header.group(1)}
        elif finished := _FINISHED.match(line):
            events.append(("end", *jobs[finished.group(1)]))
    return events


@pytest.mark.slow
def test_each_check_reads_its_own_iterations_pt2(tmp_path):
    """A real run through the repository's Snakefile: the stop rule reads the error estimate, so
    iteration k's PT2 ends before k's check starts (hinqs.loop.convergence), and both
    iterations carry their PT2. Batches of 8 determinants keep iteration 1 short of the whole
    space (E_PT2 = 0 would stop it accurate at once)."""
    config = one_system(
        SCAN_CONFIG,
        iterations={"max": 2, "tol": 1.0e-7, "window": 1},
        sqd={"n_batches": 2, "samples_per_batch": 8},
        parallel={"executor": "process", "workers": 1, "threads_per_worker": 1},
        references={"ccsd": False},
        pt2={"max_dimension": 10**10},
    )
    workdir = make_workdir(tmp_path / "ordered", config)
    proc = run_snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = job_events(proc.stdout + proc.stderr)
    for k in ("001", "002"):
        assert events.index(("end", "pt2", k)) < events.index(("start", "check", k)), events
    records = summary(workdir, "lih_r1")["per_iteration"]
    assert len(records) == 2 and all(r["e_pt2"] is not None for r in records)
