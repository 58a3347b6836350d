"""Without the shared/ folder (a clone from GitHub) the tests that need it skip with a reason that says
what the folder is and where it comes from, and the ComfyUI tests say why they skip: harness not set up,
or set up with its script (in shared/) absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import comfy_harness_util
from conftest import REPO


def _fake_harness(home: Path) -> None:
    """What shared/tools/comfy_harness/setup.sh leaves in a harness home (only the two paths the tests check)."""
    (home / "comfy-harness" / "ComfyUI").mkdir(parents=True)
    (home / "comfy-harness" / "ComfyUI" / "main.py").write_text("")
    (home / "comfy-harness" / "venv" / "bin").mkdir(parents=True)
    (home / "comfy-harness" / "venv" / "bin" / "python").symlink_to(sys.executable)


def _no_comfyui_named(monkeypatch, home: Path, shared: Path) -> None:
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.delenv("COMFY_HARNESS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("STREAMING_SHARED_DIR", str(shared))


def test_harness_set_up_but_its_script_absent_says_so(tmp_path, monkeypatch):
    _fake_harness(tmp_path / "home")
    (tmp_path / "empty").mkdir()
    _no_comfyui_named(monkeypatch, tmp_path / "home", tmp_path / "empty")
    assert comfy_harness_util.locate_comfyui() == (None, None)  # skipped, not failed: nothing was named
    reason = comfy_harness_util.skip_reason()
    assert "is set up, but the harness script" in reason and "run_workflow.py is absent" in reason, reason
    assert "shared/ folder" in reason and "not part of the repository" in reason, reason
    assert "not set up" not in reason, reason


def test_harness_not_set_up_says_so(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    _no_comfyui_named(monkeypatch, tmp_path / "home", REPO.parent / "shared")
    assert comfy_harness_util.locate_comfyui() == (None, None)
    reason = comfy_harness_util.skip_reason()
    assert "comfy-harness is not set up" in reason and "COMFYUI_PATH" in reason, reason
    assert "harness script" not in reason, reason


def test_pytest_skips_shared_and_comfyui_tests_with_their_reasons(tmp_path):
    """The real run: a test that needs shared/ and a real-ComfyUI test, with shared/ absent and the
    harness set up, skip (not error) with the reasons above."""
    _fake_harness(tmp_path / "home")
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("COMFYUI_PATH", "COMFY_HARNESS_HOME")}
    env.update(HOME=str(tmp_path / "home"), STREAMING_SHARED_DIR=str(tmp_path / "empty"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_sdvsr_keys.py::test_check_keys_passes_on_the_official_list",
         "tests/test_comfyui_host.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "failed" not in out and "error" not in out.lower(), out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert any("test_sdvsr_keys.py" in line and "no shared folder at STREAMING_SHARED_DIR=" in line
               and "not part of the repository" in line and "parity" in line for line in skipped), out
    assert any("test_comfyui_host.py" in line and "is set up, but the harness script" in line
               for line in skipped), out
