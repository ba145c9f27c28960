"""Shared test fixtures.

Real recordings for tests live outside the repository (never copied into it). They are
found through ``SNNLIB_TEST_DATA`` or, by default, ``../shared/data`` beside the checkout;
tests that need them skip with the reason where the folder is absent (a user's clone).
"""

import os
import sys
from pathlib import Path

import pytest

# jsonschema (imported by nbformat) imports rfc3987_syntax when it is installed (JupyterLab's
# event schemas pull it in), which builds a parser for the IRI grammar at import: about 4 s of
# every test session on a 2-core machine. No test validates an IRI, so the test process runs
# without it (jsonschema then skips that one format check).
sys.modules.setdefault("rfc3987_syntax", None)

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("SNNLIB_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def nmnist_root() -> Path:
    """The folder holding ``NMNIST/Train`` and ``NMNIST/Test`` (tonic's ``save_to``)."""
    if not (TEST_DATA / "NMNIST" / "Train").is_dir():
        pytest.skip(f"real N-MNIST subset not found under {TEST_DATA} (set SNNLIB_TEST_DATA)")
    return TEST_DATA
