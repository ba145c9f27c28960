"""Shared test fixtures.

Real recordings for tests live outside the repository (never copied into it). They are
found through ``SNNLIB_TEST_DATA`` or, by default, ``../shared/data`` beside the checkout;
tests that need them skip with the reason where the folder is absent (a user's clone).
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("SNNLIB_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def nmnist_root() -> Path:
    """The folder holding ``NMNIST/Train`` and ``NMNIST/Test`` (tonic's ``save_to``)."""
    if not (TEST_DATA / "NMNIST" / "Train").is_dir():
        pytest.skip(f"real N-MNIST subset not found under {TEST_DATA} (set SNNLIB_TEST_DATA)")
    return TEST_DATA
