"""Shared fixtures: the team's test photos when ../shared is present, and images made here when it is not."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture
def read_only_folder(tmp_path):
    """Return an existing folder in which no file can be created, as a photographer meets a read-only folder.

    Root ignores permission bits, so for root the folder also gets the immutable attribute (chattr +i); the test is
    skipped where that fails.
    """
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if not immutable:
            folder.chmod(0o755)
            pytest.skip("root can write into any folder, and chattr +i is not available here")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)
