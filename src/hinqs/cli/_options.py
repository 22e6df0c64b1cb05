"""Option handling shared by the commands: the run config, and old spellings of renamed options.

Every command takes the run config as ``--config FILE``. Options renamed since earlier
versions (each command module's ``RENAMED``) are answered with one line naming the new
spelling (exit 2) before argparse would print its usage dump.
"""

from __future__ import annotations

import argparse

from hinqs.errors import InputError
from hinqs.loop.settings import RunSettings

RENAMED_COMMANDS = {"basis": "subspace"}
_RENAMED = "_renamed_options"


def add_config(parser: argparse.ArgumentParser, *, required: bool = True, purpose: str = "") -> None:
    """The ``--config FILE`` option (the validated run config)."""
    text = "run config (YAML)" + (f": {purpose}" if purpose else "")
    parser.add_argument("--config", required=required, metavar="FILE", help=text)


def renamed_option(command_module: object, argv: list[str]) -> str | None:
    """The one-line message for the first old option spelling in ``argv`` (module's ``RENAMED``)."""
    renamed: dict[str, str] = getattr(command_module, "RENAMED", {})
    for arg in argv:
        old = arg.split("=", 1)[0]
        if old in renamed:
            return f"{old} is now {renamed[old]}"
    return None


def add_positional_config_pointer(parser: argparse.ArgumentParser) -> None:
    """Earlier versions took the config as the first positional argument: point to ``--config``."""
    dest = "_old_positional_config"
    parser.add_argument(dest, nargs="?", default=None, help=argparse.SUPPRESS)
    _register(parser, dest, "the config is now given as --config FILE, not as a positional argument")


def _register(parser: argparse.ArgumentParser, dest: str, message: str) -> None:
    renamed = parser.get_default(_RENAMED) or []
    parser.set_defaults(**{_RENAMED: [*renamed, (dest, message)]})


def check_renamed(args: argparse.Namespace) -> None:
    """Raise the one-line error for the first old spelling used."""
    for dest, message in getattr(args, _RENAMED, None) or []:
        if getattr(args, dest, None) is not None:
            raise InputError(message)


def load_settings(path: str | None, hamiltonian: str | None = None) -> RunSettings:
    """The validated run config as settings; with a Hamiltonian folder, resolved for its system
    (``null`` sizes derived from norb and nelec, :meth:`RunSettings.for_system`)."""
    from hinqs.config import load_config

    if path is None:
        raise InputError("the run config is required: --config FILE")
    settings = RunSettings.from_config(load_config(path))
    return settings if hamiltonian is None else settings.for_hamiltonian(hamiltonian)


def require_iteration(value: int, first: int = 1) -> int:
    """An iteration number of a workflow step: at least ``first`` (iterations count from 1)."""
    if value < first:
        raise InputError(f"--iteration must be at least {first} (iterations are numbered from 1), not {value}")
    return value


def require_system_of(hamiltonian: str, system: str) -> None:
    """Refuse a Hamiltonian folder prepared for another system than ``system``.

    Two systems can share norb and nelec (two points of a scan), so the shape alone would
    let a model or a state be built on the wrong molecule's integrals without a word.
    """
    from hinqs.io.hamiltonian import read_meta

    recorded = (read_meta(hamiltonian).get("system") or {}).get("name")
    if recorded is not None and recorded != system:
        raise InputError(f"{hamiltonian} was prepared for system {recorded!r}, not {system!r}")
