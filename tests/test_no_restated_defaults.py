"""Defaults are written once, in the config schema: no library keyword default restates one.

A keyword default equal to a schema default under the same name (or a known alias) would
drift from the schema the day one of them changes; library functions take the settings or
a required argument instead (issue 15).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hinqs
from hinqs.config import schema_defaults

# parameter names that stand for a schema key of another name
ALIASES = {
    "max_determinants": "max_teacher_determinants",
    "min_weight": "teacher_min_weight",
    "threads": "threads_per_worker",
    "timeout": "batch_timeout",
}
# same name, another quantity: the SCF's own convergence threshold is not the SQD solver's
OTHER_MEANING = {
    ("hinqs.chem.integrals", "run_scf", "conv_tol"),
    ("hinqs.sqd.task", "__init__", "threads"),  # a task run on its own uses one thread; executors set theirs
}


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _functions():
    for info in pkgutil.walk_packages(hinqs.__path__, "hinqs."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isfunction(obj):
                yield info.name, obj
            elif inspect.isclass(obj):
                for member in vars(obj).values():
                    if inspect.isfunction(member):
                        yield info.name, member


def test_no_keyword_default_restates_a_schema_default():
    by_name: dict[str, list[tuple[str, object]]] = {}
    for key, value in _leaves(schema_defaults()):
        if value is not None:
            by_name.setdefault(key.rsplit(".", 1)[-1], []).append((key, value))
    found = []
    for module, func in _functions():
        for param in inspect.signature(func).parameters.values():
            default = param.default
            if default is inspect.Parameter.empty or default is None:
                continue
            if (module, func.__name__, param.name) in OTHER_MEANING:
                continue
            name = ALIASES.get(param.name, param.name)
            for key, value in by_name.get(name, []):
                if type(default) is not bool and type(value) is not bool and default == value:
                    found.append(f"{module}.{func.__qualname__}({param.name}={default!r}) restates {key}")
    assert not found, "\n".join(found)


def test_the_check_sees_a_restated_default(monkeypatch):
    """The test above would catch a function that restated nqs.max_batch."""

    def sampler(n: int, max_batch: int = schema_defaults()["nqs"]["max_batch"]) -> int:
        return n

    sampler.__module__ = "hinqs.seeding"
    monkeypatch.setattr(hinqs.seeding, "_probe_restated", sampler, raising=False)
    try:
        test_no_keyword_default_restates_a_schema_default()
    except AssertionError as exc:
        assert "max_batch" in str(exc)
    else:
        raise AssertionError("the check missed a restated default")
