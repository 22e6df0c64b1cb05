"""Everything the workflow can refuse before a job runs, as one line and exit code 2.

Snakemake's own ``validate`` prints the whole JSON schema for one misspelt key (2,744 lines),
and a system PySCF cannot build, or a combination a command refuses, used to surface only
when that job ran, as a ``CalledProcessError`` with the reason in a log file. Here the
Snakefile checks the config (:func:`hinqs.config.validate_config`), each system's chemistry
without an SCF (:func:`hinqs.chem.integrals.active_shape_of`) and the settings every step
builds from it (:class:`hinqs.loop.settings.RunSettings`, resolved for each system), so what
a command would refuse is refused while the DAG is planned, before anything is written.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from hinqs.errors import InputError


def checked_config(config: dict[str, Any], source: str = "config", *, chemistry: bool = True) -> dict[str, Any]:
    """The validated config (defaults filled); raises the first problem as one InputError.

    ``chemistry=False`` skips the per-system checks (a SLURM job re-reading the Snakefile:
    the workflow's own process has checked them already).
    """
    from hinqs.config import validate_config
    from hinqs.loop.settings import RunSettings

    config = validate_config(config, source)
    settings = RunSettings.from_config(config)
    if chemistry:
        from hinqs.chem.integrals import active_shape_of

        for system in config["systems"]:
            norb, nelec = active_shape_of(system)
            settings.for_system(norb, nelec).sqd_step(1)
    return config


def refuse(exc: InputError) -> NoReturn:
    """Print ``exc`` as the one line the ``hinqs`` command would print and exit with its code."""
    print(f"hinqs: error: {exc}", file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)


def checked_or_exit(config: dict[str, Any], source: str = "config", *, chemistry: bool = True) -> dict[str, Any]:
    """:func:`checked_config` for the Snakefile: a problem ends Snakemake with one line, exit 2."""
    try:
        return checked_config(config, source, chemistry=chemistry)
    except InputError as exc:
        refuse(exc)
