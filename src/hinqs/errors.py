"""Errors that reach the user as one line and an exit code, never as a traceback."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user (config, files, arguments): reported in one line, exit code 2."""

    exit_code = 2


class StepFailed(Exception):
    """A workflow step ran but could not produce a usable result (e.g. every batch failed): exit 1."""

    exit_code = 1


class WriteFailed(InputError):
    """An output could not be written (disk full, quota, read-only or failing file system).

    Reported like bad input, in one line with exit code 2: the fix is on the user's side
    (free space, another results folder), and the atomic writers have already removed
    their temporary file, so the target is either untouched or complete.
    """
