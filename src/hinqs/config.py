"""Load and validate a run config against the one JSON schema shared with Snakemake.

The schema (``schemas/config.schema.yaml``, linked from ``workflow/schemas/``) gives every
key a type, a default and a description. Validation here fills the defaults the same way
Snakemake's ``validate(..., set_default=True)`` does, then adds the checks a schema cannot
express (exactly one of geometry/fcidump, heads dividing the model width, unique names).
"""

from __future__ import annotations

import copy
import math
import os
import string
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hinqs.errors import InputError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"


@cache
def load_schema() -> dict[str, Any]:
    """The config schema as a dict."""
    with open(SCHEMA_PATH) as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills ``default`` values of absent properties while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_integer(_checker: Any, instance: Any) -> bool:
    """A count is an int: JSON Schema's own rule takes 3.0 as an integer, which then reaches
    ``range`` or an array shape deep inside a step and fails there."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
_Validator = _with_defaults(jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES))


def _location(path: Any) -> str:
    parts: list[str] = []
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _location(error.absolute_path)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        return f"{where}: unknown key {', '.join(_with_suggestion(k, known) for k in extra)}"
    if error.validator == "minItems" and where == "systems":
        return "systems: the list is empty; give at least one system (a name and a geometry or an fcidump)"
    if error.validator == "type" and isinstance(error.instance, float) and "integer" in _as_list(error.validator_value):
        return f"{where}: {error.instance!r} is not an integer (a count: write it without a decimal point)"
    return f"{where}: {error.message}"


def _with_suggestion(key: Any, known: list[str]) -> str:
    """``'n_batchs' (did you mean 'n_batches'?)`` where a known key is close; else the key alone."""
    import difflib

    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _non_finite(data: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], float] | None:
    """The location and value of the first NaN or infinity in a parsed config (None: all finite).

    YAML reads ``.nan`` and ``.inf`` as floats and JSON Schema's ``number`` accepts them:
    ``sqd.conv_tol: .inf`` stops the solver at once and reports the HF energy as the answer.
    """
    if isinstance(data, float) and not math.isfinite(data):
        return path, data
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = _non_finite(value, (*path, key))
        if found:
            return found
    return None


def validate_config(data: Any, source: str = "config") -> dict[str, Any]:
    """Validate ``data`` (a parsed YAML mapping) and return a copy with defaults filled in."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: the config must be a mapping of keys to values")
    _check_renamed(data, source)
    found = _non_finite(data)
    if found:
        raise InputError(f"{source}: {_location(found[0])}: {found[1]} is not a finite number")
    config = copy.deepcopy(data)
    errors = sorted(_Validator(load_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(f"{source}: {_describe(errors[0])}")
    _check_semantics(config, source)
    return config


# Config keys renamed since earlier versions: the old spelling gets a one-line pointer.
RENAMED_KEYS = {"basis": "subspace"}


def schema_defaults() -> dict[str, Any]:
    """Every top-level key's default with nested defaults filled (``systems`` has none)."""
    out: dict[str, Any] = {}
    for key, node in load_schema()["properties"].items():
        if "default" in node:
            value = copy.deepcopy(node["default"])
            _Validator(node).validate(value)
            out[key] = value
    return out


def complete_system(system: dict[str, Any]) -> dict[str, Any]:
    """One ``systems`` entry validated, with the schema's defaults filled in: what the chemistry
    reads (it restates no default), for a system written by hand in a script or a test."""
    return validate_config({"systems": [system]}, f"system {system.get('name')!r}")["systems"][0]


def _check_renamed(data: dict[str, Any], source: str) -> None:
    for old, new in RENAMED_KEYS.items():
        if old in data:
            raise InputError(f"{source}: the section {old!r} is now called {new!r} (the determinant subspace)")


def _check_semantics(config: dict[str, Any], source: str) -> None:
    names = [system["name"] for system in config["systems"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"{source}: systems: duplicate name {duplicates[0]!r}")
    for index, system in enumerate(config["systems"]):
        has_geometry = "geometry" in system
        has_fcidump = "fcidump" in system
        if has_geometry == has_fcidump:
            raise InputError(f"{source}: systems[{index}]: give exactly one of 'geometry' and 'fcidump'")
    nqs = config["nqs"]
    if nqs["d_model"] is not None and nqs["d_model"] % nqs["n_heads"]:
        raise InputError(f"{source}: nqs.n_heads ({nqs['n_heads']}) must divide nqs.d_model ({nqs['d_model']})")
    if not str(config["results_dir"]).strip():
        raise InputError(f"{source}: results_dir is empty; name a folder for the results (default: results)")
    _check_launcher(config["parallel"], source)


# The one placeholder an MPI launcher template may hold (hinqs.loop.workflow_support formats it).
LAUNCHER_FIELDS = {"ranks"}


def _check_launcher(parallel: dict[str, Any], source: str) -> None:
    """The launcher template formats (known placeholders only) and is there when MPI needs it.

    Checked for every executor: a template is formatted when the DAG is built, so a typo
    such as ``{rank}`` would otherwise end in a KeyError inside the Snakefile.
    """
    template = parallel["mpi_launcher"]
    try:
        fields = {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InputError(f"{source}: parallel.mpi_launcher {template!r} is not a valid template ({exc})") from None
    unknown = sorted(fields - LAUNCHER_FIELDS)
    if unknown:
        raise InputError(
            f"{source}: parallel.mpi_launcher {template!r} has the unknown placeholder {{{unknown[0]}}} "
            "(the only one is {ranks})"
        )
    if parallel["executor"] in ("mpi", "distributed") and not template.strip():
        raise InputError(
            f"{source}: parallel.executor {parallel['executor']!r} needs parallel.mpi_launcher "
            "(e.g. 'mpiexec -n {ranks}'); it is empty"
        )


def read_config_file(path: str | os.PathLike[str]) -> Any:
    """The YAML (or JSON) content of a config file, unvalidated; one line naming the file when it
    is missing, a folder, unreadable or malformed (also what the environment's ``snakemake``
    checks before Snakemake loads the file: :mod:`hinqs.loop.front`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"config file {path} is a folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"config file {path} is not valid YAML{where}: {problem}") from None


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file and validate it; errors name the file and the key."""
    data = read_config_file(path)
    return validate_config(data, str(path))
