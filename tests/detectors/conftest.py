"""Fixtures of the analytics tests: generated clips (once per session) and the trained scenes model."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors import SCENES_MODEL
from detectors.models.clips import write_clip


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated clip per scene used by the toolkit tests (held-out seeds: not in the training set)."""
    root = tmp_path_factory.mktemp("clips")
    wanted = {"parking": ("parking", "complied", 9001), "dumping": ("dumping", "bag", 9002)}
    out = {}
    for name, (kind, variant, seed) in wanted.items():
        out[name] = root / f"{kind}-{variant}-{seed}"
        write_clip(out[name], kind, variant, seed)
    return out


@pytest.fixture(scope="session")
def scenes_model() -> Path:
    """The project's trained detector (committed; docs/models.md says how it was trained)."""
    assert SCENES_MODEL.is_file(), f"{SCENES_MODEL} is missing: it is part of the repository"
    return SCENES_MODEL
