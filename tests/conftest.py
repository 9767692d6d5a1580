"""Shared fixtures: the team's test photos when ../shared is present, and images made here when it is not."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = Path(os.environ.get("HEADSHOT_TEST_PHOTOS", REPO_ROOT.parent / "shared" / "photos"))


@pytest.fixture(autouse=True)
def english_messages(monkeypatch):
    """Run every test in English unless it sets HEADSHOT_LANG itself."""
    monkeypatch.setenv("HEADSHOT_LANG", "en")


@pytest.fixture(scope="session")
def shared_photos() -> Path:
    """The folder of public-domain portraits; tests that need it skip where it is absent."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"test photos not found at {SHARED_PHOTOS}")
    return SHARED_PHOTOS


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    """scikit-image's astronaut portrait (512×512, RGB, uint8), available everywhere."""
    from skimage import data

    return data.astronaut()
