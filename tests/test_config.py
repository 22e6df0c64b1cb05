"""The one schema: defaults, errors, and agreement with Snakemake's own validation."""

from __future__ import annotations

import copy

import pytest
from snakemake.utils import validate as snakemake_validate

from hinqs.config import SCHEMA_PATH, load_schema, validate_config
from hinqs.errors import InputError

MINIMAL = {"systems": [{"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"}]}


def test_defaults_filled_match_snakemake_validate():
    ours = validate_config(copy.deepcopy(MINIMAL))
    theirs = copy.deepcopy(MINIMAL)
    snakemake_validate(theirs, str(SCHEMA_PATH), set_default=True)
    assert ours["sqd"]["solver"] == "direct"
    assert ours["parallel"]["executor"] == "process"
    assert ours["systems"][0]["basis"] == "sto-3g"
    for section in ("seed", "nqs", "sqd", "parallel", "iterations", "references"):
        assert theirs[section] == ours[section], section
    assert theirs["systems"] == ours["systems"]


def test_every_property_has_a_description():
    def walk(schema, where):
        for key, sub in schema.get("properties", {}).items():
            assert sub.get("description"), f"{where}.{key} has no description"
            walk(sub, f"{where}.{key}")
        if "items" in schema:
            walk(schema["items"], f"{where}[]")

    walk(load_schema(), "config")


def test_workflow_schema_is_the_package_schema():
    from pathlib import Path

    linked = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    assert linked.resolve() == SCHEMA_PATH.resolve()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"nqs": {"d_model": 30, "n_heads": 4}}, "nqs.n_heads (4) must divide nqs.d_model (30)"),
        ({"systems": [MINIMAL["systems"][0], MINIMAL["systems"][0]]}, "duplicate name 'h2'"),
        ({"seed": -1}, "seed: -1 is less than the minimum of 0"),
        ({"sqd": {"n_batches": 0}}, "sqd.n_batches: 0 is less than the minimum of 1"),
        ({"systems": [{"name": "bad name", "geometry": "H 0 0 0"}]}, "systems[0].name"),
    ],
)
def test_invalid_values_name_the_key(patch, message):
    with pytest.raises(InputError) as info:
        validate_config({**MINIMAL, **patch}, "cfg.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("cfg.yaml: ")


def test_settings_come_from_the_schema_alone():
    """Every settings field is a schema key and the schema's defaults build settings (the NQS
    library functions keep no defaults of their own: tests/test_no_restated_defaults.py)."""
    from dataclasses import fields

    from hinqs.loop.settings import RunSettings

    config = validate_config(copy.deepcopy(MINIMAL))
    settings = RunSettings.from_config(config)
    assert settings == RunSettings.from_config({**validate_config(copy.deepcopy(MINIMAL))})
    for section, obj in (("nqs", settings.nqs), ("parallel", settings.parallel), ("sqd", settings.sqd.solver)):
        for f in fields(obj):
            assert config[section][f.name] == getattr(obj, f.name), f"{section}.{f.name}"
    assert RunSettings.defaults().nqs == settings.nqs


def test_every_schema_key_reaches_the_settings():
    """A key the settings do not carry would silently fall back to a default somewhere else."""
    from dataclasses import fields

    from hinqs.loop.settings import (
        ExpansionSettings,
        IterationSettings,
        NQSSettings,
        ReferenceSettings,
        SQDSection,
    )
    from hinqs.sqd.settings import ParallelSettings, SolverSettings

    def names(cls):
        return {f.name for f in fields(cls)}

    props = {k: set(v.get("properties", {})) for k, v in load_schema()["properties"].items()}
    assert props["references"] == names(ReferenceSettings)
    assert props["nqs"] == names(NQSSettings)
    assert props["sqd"] == (names(SQDSection) - {"solver"}) | names(SolverSettings)
    assert props["parallel"] == names(ParallelSettings) | {"mpi_launcher"}
    assert props["subspace"] == {"max_strings", "max_size", "expansion"}
    expansion = set(load_schema()["properties"]["subspace"]["properties"]["expansion"]["properties"])
    assert expansion == names(ExpansionSettings)
    assert props["iterations"] == names(IterationSettings)
