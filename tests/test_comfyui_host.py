"""nodes/host against a real ComfyUI's modules (folder_paths, ModelPatcher, ProgressBar, context windows).

The checks run in ComfyUI's own interpreter (tests/comfyui_scripts/host_checks.py), because ComfyUI's
top-level ``nodes`` module and ours cannot share one process with the pack's test imports.
"""

from __future__ import annotations

import pytest

from comfy_harness_util import REPO, comfyui, run_check_script

pytestmark = comfyui

SCRIPT = REPO / "tests" / "comfyui_scripts" / "host_checks.py"
CHECKS = ("pack_registers_its_nodes", "model_folders_merge_yaml_and_default", "hub_subfolders_are_selectable",
          "devices_and_dtypes_follow_comfyui", "models_are_managed_by_comfyui",
          "progress_reports_previews_and_honours_cancel", "previews_follow_the_preview_method_through_comfyuis_previewer",
          "blend_choices_are_comfyuis_fuses_and_windows_match_its_static_schedule",
          "patched_model_keeps_comfyuis_handler_contract", "latent_layouts_of_native_families")


@pytest.fixture(scope="module")
def results():
    return run_check_script(SCRIPT)


@pytest.mark.parametrize("name", CHECKS)
def test_host_check(results, name):
    assert results.get(name) == "ok", results.get(name, f"check {name} did not run")


def test_no_check_is_left_out(results):
    assert sorted(results) == sorted(CHECKS)
