"""Shared test fixtures: where the shared specs and parity fixtures live, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# One intra-op thread: the tiny models gain nothing from more, CPU kernels then sum in a fixed order
# (several tests compare two code paths bit for bit), and a busy 2-core machine does not thrash.
torch.set_num_threads(int(os.environ.get("STREAMING_TEST_THREADS", "1")))
SHARED = Path(os.environ.get("STREAMING_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "specs").is_dir():
        pytest.fail(f"shared specs/fixtures not found at {SHARED}; set STREAMING_SHARED_DIR to the shared/ folder")
    return SHARED


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
