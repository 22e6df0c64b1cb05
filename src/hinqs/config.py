"""Load and validate a run config against the one JSON schema shared with Snakemake.

The schema (``schemas/config.schema.yaml``, linked from ``workflow/schemas/``) gives every
key a type, a default and a description. Validation here fills the defaults the same way
Snakemake's ``validate(..., set_default=True)`` does, then adds the checks a schema cannot
express (exactly one of geometry/fcidump, heads dividing the model width, unique names).
"""

from __future__ import annotations

import copy
import os
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


_Validator = _with_defaults(jsonschema.Draft202012Validator)


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
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown key {', '.join(repr(k) for k in extra)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate_config(data: Any, source: str = "config") -> dict[str, Any]:
    """Validate ``data`` (a parsed YAML mapping) and return a copy with defaults filled in."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: the config must be a mapping of keys to values")
    _check_renamed(data, source)
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


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file and validate it; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(f"{path}: not valid YAML{where}") from None
    return validate_config(data, str(path))
