"""ComfyUI's partial (low-VRAM) loading of every tiny model gives bitwise the output of a full load.

Runs tests/comfyui_scripts/partial_load_checks.py in ComfyUI's interpreter: each model is wrapped by
nodes/host (ComfyUI's comfy.ops layers injected), loaded by ModelPatcher with a budget of a third of
its size, and its workload (every network of the model) compared with a full load and with the plain
torch model. fp8_e4m3fn storage under the same partial load stays within the tolerance measured in
tests/test_vram_operations.py.
"""

from __future__ import annotations

import pytest

from comfy_harness_util import REPO, comfyui, run_check_script

pytestmark = comfyui

SCRIPT = REPO / "tests" / "comfyui_scripts" / "partial_load_checks.py"
WORKLOADS = ("streamingt2v", "modelscope_unet", "enhancer_msvid2vid", "enhancer_unet3d", "stream_diffvsr")


@pytest.fixture(scope="module")
def results():
    return run_check_script(SCRIPT, timeout=900)


@pytest.mark.parametrize("name", WORKLOADS)
def test_partial_load_is_bitwise_a_full_load(results, name):
    r = results[name]
    assert "error" not in r, r.get("error")
    assert r["model_lowvram"] and r["lowvram_layers"] > 0, r  # the partial path really ran
    assert r["loaded_bytes"] <= r["budget_bytes"] < r["model_bytes"], r
    assert r["full_equal_plain"], r
    assert r["partial_equal_full"], r


@pytest.mark.parametrize("name", WORKLOADS)
def test_fp8_storage_under_partial_load(results, name):
    r = results[name]
    assert r["fp8_partial_lowvram_layers"] > 0
    assert 0 < r["fp8_e4m3fn_rel_rms"] < 0.35, r  # see FP8_E4M3_REL_RMS in tests/test_vram_operations.py
