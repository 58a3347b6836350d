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


def shared_skip_reason(shared: Path) -> str:
    """Why the tests that need the shared folder skip: what it is, where it comes from, what it enables."""
    where = (f"STREAMING_SHARED_DIR={os.environ['STREAMING_SHARED_DIR']}" if os.environ.get("STREAMING_SHARED_DIR")
             else f"../shared ({shared})")
    return (f"no shared folder at {where}: shared/ is the project's development folder, laid beside the clone on "
            "the project's machines and in CI and not part of the repository; it holds the official key lists "
            "(specs/), the parity fixtures made by running the official code (fixtures/) and the ComfyUI test "
            "harness (tools/). Put it there or set STREAMING_SHARED_DIR to it to run the check-keys, parity and "
            "real-ComfyUI tests")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "specs").is_dir() or not (SHARED / "fixtures").is_dir():
        pytest.skip(shared_skip_reason(SHARED))
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
