"""Defaults are written once, in the config schema: no library keyword default restates one.

A keyword default equal to a schema default under the same name (or a known alias) would
drift from the schema the day one of them changes; library functions take the settings or
a required argument instead (issue 15). A ``.get(key, value)`` fallback on a schema key is
the same second default in another spelling (and may contradict the schema outright).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

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
    # the torch device a checkpoint is read onto, not where sqd's direct solver applies H
    ("hinqs.nqs.checkpoint", "init_checkpoint", "device"),
    ("hinqs.nqs.checkpoint", "load_checkpoint", "device"),
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


def _schema_keys() -> set[str]:
    """Every key name the schema gives a default, at any depth, and the ``systems`` entries' keys."""
    from hinqs.config import load_schema

    names = {key.rsplit(".", 1)[-1] for key, _ in _leaves(schema_defaults())}
    names |= set(schema_defaults())
    names |= set(load_schema()["properties"]["systems"]["items"]["properties"])
    return names


def _get_fallbacks(source: str) -> list[tuple[int, str, object]]:
    """``(line, key, fallback)`` of every ``x.get("key", <literal>)`` whose fallback is not None."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"):
            continue
        if len(node.args) != 2 or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, str):
            continue
        try:
            fallback = ast.literal_eval(node.args[1])
        except ValueError:
            continue  # a computed fallback (another key's value, a call) restates nothing
        if fallback is not None:
            found.append((node.lineno, node.args[0].value, fallback))
    return found


def _restated_fallbacks(root: Path) -> list[str]:
    """A ``.get(key, value)`` on a schema key is a second default: it would answer for the schema
    (or against it: ``orbitals`` once fell back to "hf" where the schema says mp2)."""
    keys = _schema_keys()
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, key, fallback in _get_fallbacks(path.read_text()):
            if ALIASES.get(key, key) in keys and (path.stem, key) not in FALLBACK_OTHER_MEANING:
                found.append(f"{path.relative_to(root)}:{line}: .get({key!r}, {fallback!r}) restates the schema")
    return found


# same key name, another dictionary (module stem, key): not a config section
FALLBACK_OTHER_MEANING = {
    ("files", "batches"),  # result.json's per-batch records, not pt2.batches
    ("aggregate", "references"),  # meta.json's computed reference energies, not the references section
    ("text", "basis"),  # what an extrapolation's uncertainty covers, not a system's AO basis
}


def test_no_get_fallback_restates_a_schema_default():
    found = _restated_fallbacks(Path(hinqs.__file__).parent)
    assert not found, "\n".join(found)


def test_the_check_sees_a_get_fallback(tmp_path):
    """The check above would catch the fallback chem/integrals.py had (issue: "hf" where the schema says mp2)."""
    (tmp_path / "integrals.py").write_text('def kind(system):\n    return system.get("orbitals", "hf")\n')
    (tmp_path / "other.py").write_text('def ecore(data):\n    return data.get("ECORE", 0.0), data.get("name")\n')
    assert _restated_fallbacks(tmp_path) == ["integrals.py:2: .get('orbitals', 'hf') restates the schema"]
