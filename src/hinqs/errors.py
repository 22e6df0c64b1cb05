"""Errors that reach the user as one line and an exit code, never as a traceback."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user (config, files, arguments): reported in one line, exit code 2."""

    exit_code = 2


class StepFailed(Exception):
    """A workflow step ran but could not produce a usable result (e.g. every batch failed): exit 1."""

    exit_code = 1
