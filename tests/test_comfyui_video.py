"""The VIDEO hand-off (nodes/host/videos.py) against a real ComfyUI's VideoFromFile, VideoFromComponents,
SaveVideo and GetVideoComponents, in ComfyUI's own interpreter (tests/comfyui_scripts/video_checks.py)."""

from __future__ import annotations

import pytest

from comfy_harness_util import REPO, comfyui, run_check_script

pytestmark = comfyui

SCRIPT = REPO / "tests" / "comfyui_scripts" / "video_checks.py"
CHECKS = ("handoff_video_is_a_native_video_that_savevideo_saves", "get_video_components_decodes_a_handoff_video",
          "native_videos_are_read_lazily_or_without_a_copy", "a_vanished_handoff_file_is_named_and_its_node_runs_again",
          "a_dropped_handoff_video_deletes_its_file")


@pytest.fixture(scope="module")
def results():
    return run_check_script(SCRIPT)


@pytest.mark.parametrize("name", CHECKS)
def test_video_check(results, name):
    assert results.get(name) == "ok", results.get(name, f"check {name} did not run")


def test_no_check_is_left_out(results):
    assert sorted(results) == sorted(CHECKS)
