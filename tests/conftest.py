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


# Test files whose assertions compare floating-point results (parity fixtures, two code paths, float32
# against float64). CI reruns them with `-m numerics` under a second CPU kernel path (see .ci/run), so a
# tolerance set from the last bits of one machine fails there and not on the next contributor's CPU.
NUMERICS_FILES = {
    "test_msvid2vid_unet.py", "test_st2v_parity.py", "test_sdvsr_parity.py", "test_generate_parity.py",
    "test_st2v_models.py", "test_sdvsr_models.py", "test_core_unet3d.py", "test_core_sampling.py",
    "test_refine_sampler.py", "test_generate_dpm_solver.py", "test_core_video_io.py", "test_metrics.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in NUMERICS_FILES:
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
