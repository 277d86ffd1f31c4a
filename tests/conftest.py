"""Shared fixtures: the real data beside the project (skipped when absent)."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder ../shared/data with the real CIFAR-10 and Tiny ImageNet zips, or skip."""
    if not (SHARED_DATA / "cifar10-jpeg.zip").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
