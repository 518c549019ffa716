"""The JSON Schemas shipped in config/schema are exactly what the models generate (never stale)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qinghe.configcheck import SCHEMA_MODELS, json_schema

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "config" / "schema"


@pytest.mark.parametrize("kind", sorted(SCHEMA_MODELS))
def test_shipped_schema_matches_the_models(kind: str) -> None:
    shipped = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
    assert shipped == json_schema(kind), f"run `qinghe config schema all --out config/schema` after changing {kind}"


def test_schemas_forbid_unknown_keys_at_the_top() -> None:
    for kind in SCHEMA_MODELS:
        assert json_schema(kind)["additionalProperties"] is False, kind
