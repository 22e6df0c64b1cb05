"""What the workflow prints on the terminal besides Snakemake's own log.

- ``failure_lines`` (the Snakefile's ``onerror``): for each failed job, the one line its
  ``hinqs`` command wrote (exit 2: bad input; exit 1: a step that could not finish) and the
  log it is in. Snakemake shows only ``CalledProcessError ... exit status 2`` and "check log
  file(s)"; the reason is in that log.
- ``answer_when_up_to_date`` (registered with ``atexit`` by the Snakefile): Snakemake calls
  neither ``onsuccess`` nor ``onerror`` when there was nothing to be done, so a rerun of a
  finished workflow would otherwise print no answer.
- ``put_own_bin_on_path``: the rules call ``hinqs``; run as ``.venv/bin/snakemake`` without
  activating the environment, ``hinqs`` is not on PATH and every job fails with exit 127.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

# "Error in rule prepare:" opens a failed job's block in Snakemake's log; its "log:" line
# lists the job's log files, followed by "(check log file(s) for error details)".
_ERROR_BLOCK = re.compile(r"^Error in rule (\S+):\s*$")
_LOG_LINE = re.compile(r"^\s+log: (.*?)(?: \(check log file\(s\) for error details\))?\s*$")
# The line the hinqs command line ends a failed command with (hinqs.cli.main).
_HINQS_LINE = re.compile(r"^hinqs [\w-]+: (error|failed|interrupted)\b")


def failed_jobs(snakemake_log: str) -> list[tuple[str, list[str]]]:
    """(rule, its log files) of each failed job in the text of Snakemake's log, in order, once each."""
    jobs: list[tuple[str, list[str]]] = []
    rule: str | None = None
    for line in snakemake_log.splitlines():
        opened = _ERROR_BLOCK.match(line)
        if opened:
            rule = opened.group(1)
            jobs.append((rule, []))
            continue
        if rule is None:
            continue
        logs = _LOG_LINE.match(line)
        if logs:
            jobs[-1][1].extend(p.strip() for p in logs.group(1).split(",") if p.strip())
            rule = None
        elif line and not line.startswith((" ", "\t")):
            rule = None  # the block ended without a log line
    unique: list[tuple[str, list[str]]] = []
    for job in jobs:
        if job not in unique:
            unique.append(job)
    return unique


def reason_in(log_file: str | os.PathLike[str]) -> str | None:
    """The one-line reason a job's log gives: the hinqs error line, else its last line (a
    traceback's exception, a shell's "command not found"); None without a readable log."""
    try:
        lines = [line.strip() for line in Path(log_file).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if _HINQS_LINE.match(line):
            return line
    return lines[-1] if lines else None


def failure_lines(snakemake_log: str) -> list[str]:
    """One line per failed job: the rule, the reason from its log, where the whole log is."""
    out = []
    for rule, logs in failed_jobs(snakemake_log):
        reasons = [(reason_in(log), log) for log in logs]
        found = [(reason, log) for reason, log in reasons if reason]
        if found:
            reason, log = found[0]
            line = f"{rule} failed: {reason}  (full log: {log})"
        elif logs:
            line = f"{rule} failed; its log {logs[0]} is empty or missing"
        else:
            continue
        if line not in out:  # a cluster job's block names more logs (its SLURM log) than the local one
            out.append(line)
    return out


def print_failures(snakemake_logs: str | os.PathLike[str] | list[Any] | None) -> None:
    """The Snakefile's ``onerror``: the reasons of the failed jobs, last on the terminal.

    ``snakemake_logs`` is what Snakemake hands the hook: its log file, or a list of them.
    """
    files = snakemake_logs if isinstance(snakemake_logs, list | tuple) else [snakemake_logs]
    text = ""
    for name in files:
        if name:
            try:
                text += Path(name).read_text(errors="replace")
            except OSError:
                continue
    lines = failure_lines(text)
    if lines:
        print("", file=sys.stderr)
        for line in lines:
            print(line, file=sys.stderr, flush=True)


def up_to_date(workflow: Any) -> bool:
    """Whether this Snakemake process found nothing to run (the case with no hook called).

    True only for the workflow's own process (not a cluster job, not ``-n``, ``--lint`` or
    ``--report``) whose DAG was built and holds no job to run.
    """
    try:
        if workflow.remote_exec or workflow.subprocess_exec or workflow.dryrun:
            return False
        dag = workflow.dag
    except AttributeError:
        return False
    return dag is not None and len(dag) == 0


def answer_when_up_to_date(
    workflow: Any, summaries: list[Path], print_answer: Callable[[], None], answered: MutableMapping[str, bool]
) -> None:
    """Print the answer again when the workflow was already finished (``atexit``).

    ``answered`` is set by ``onsuccess``/``onerror``; every summary must exist, so an older
    run's answer is not shown after a run that stopped before its DAG was complete.
    """
    if answered.get("done") or not up_to_date(workflow) or not all(Path(p).exists() for p in summaries):
        return
    print_answer()


def put_own_bin_on_path(environ: MutableMapping[str, str] | None = None, executable: str | None = None) -> None:
    """Put the folder of the running Python (the venv's bin) first on PATH when ``hinqs`` is in it."""
    environ = os.environ if environ is None else environ
    bin_dir = Path(executable or sys.executable).parent
    if not (bin_dir / "hinqs").exists():
        return
    parts = environ.get("PATH", "").split(os.pathsep) if environ.get("PATH") else []
    if str(bin_dir) not in parts:
        environ["PATH"] = os.pathsep.join([str(bin_dir), *parts])
