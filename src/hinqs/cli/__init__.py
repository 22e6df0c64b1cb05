"""The ``hinqs`` command line: one sub-command per workflow step.

Each sub-command lives in its own module of this package and defines ``COMMAND`` (its
name), ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
discovered, so adding a step never touches this file. Sub-command modules import heavy
libraries (PySCF, torch) inside ``run`` only, which keeps ``hinqs --help`` fast.

Errors the user can fix (:class:`hinqs.errors.InputError`) print one line and exit 2; a step
that ran but could not produce a result (:class:`hinqs.errors.StepFailed`) exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from hinqs import __version__
from hinqs.cli._options import RENAMED_COMMANDS, check_renamed, renamed_option
from hinqs.errors import InputError, StepFailed


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "COMMAND"):
            modules.append(module)
    return modules


def build_parser(modules: list[ModuleType] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per (discovered) command module."""
    parser = argparse.ArgumentParser(prog="hinqs", description="HI-NQS-SQD quantum chemistry workflow steps.")
    parser.add_argument("--version", action="version", version=f"hinqs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules if modules is not None else _command_modules():
        command = sub.add_parser(module.COMMAND, help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hinqs`` console script."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv and argv[0] in RENAMED_COMMANDS:
        print(f"hinqs: error: the command {argv[0]!r} is now {RENAMED_COMMANDS[argv[0]]!r}", file=sys.stderr)
        return InputError.exit_code
    modules = _command_modules()
    module = next((m for m in modules if argv and argv[0] == m.COMMAND), None)
    message = renamed_option(module, argv[1:]) if module else None
    if message:
        print(f"hinqs {argv[0]}: error: {message}", file=sys.stderr)
        return InputError.exit_code
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    try:
        check_renamed(args)
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"hinqs {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StepFailed as exc:
        print(f"hinqs {args.command}: failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hinqs {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
