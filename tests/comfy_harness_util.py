"""Running the pack in a real ComfyUI from pytest: find one, post API workflows, read the results.

A real ComfyUI is used when one is there and skipped otherwise (CI has none):
* ``COMFYUI_PATH``: a ComfyUI checkout; its python is ``COMFYUI_PYTHON`` (default: ``python3``);
* else ``COMFY_HARNESS_HOME`` or ``~/comfy-harness`` as set up by shared/tools/comfy_harness/setup.sh
  (``ComfyUI/`` and ``venv/``).
Workflows go through the shared harness (``run_workflow.py``): it links the pack into
``custom_nodes``, starts ``main.py --cpu`` with only this pack, posts each workflow and reports.

Usage in a test module::

    from comfy_harness_util import comfyui, find_comfyui, run_workflows
    pytestmark = comfyui          # marker + skip when no ComfyUI

    report = run_workflows({"blend": api_graph}, tmp_dir, models_dir=models)
    assert report.workflow("blend")["status"] == "success"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMING_SHARED_DIR", REPO.parent / "shared"))
RUN_WORKFLOW = SHARED / "tools" / "comfy_harness" / "run_workflow.py"
# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the thread pool's
# spinning makes a tiny forward ~5x slower (0.36 s vs 1.97 s for the blend tests' 2 steps, measured).
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MODEL_FOLDERS = ("checkpoints", "diffusion_models", "text_encoders", "vae", "clip_vision", "loras",
                 "upscale_models", "streamingt2v", "stream_diffvsr")


@dataclass(frozen=True)
class ComfyInstall:
    root: Path      # the ComfyUI folder (main.py)
    python: str     # the interpreter ComfyUI runs with


def find_comfyui() -> Optional[ComfyInstall]:
    """The ComfyUI to test against, or None."""
    if not RUN_WORKFLOW.is_file():
        return None
    if os.environ.get("COMFYUI_PATH"):
        root = Path(os.environ["COMFYUI_PATH"])
        python = os.environ.get("COMFYUI_PYTHON", "python3")
    else:
        home = Path(os.environ.get("COMFY_HARNESS_HOME", Path.home() / "comfy-harness"))
        root, python = home / "ComfyUI", str(home / "venv" / "bin" / "python")
        if not Path(python).exists():
            return None
    return ComfyInstall(root, python) if (root / "main.py").is_file() else None


comfyui = [
    pytest.mark.comfyui,
    pytest.mark.skipif(find_comfyui() is None, reason="no ComfyUI: set COMFYUI_PATH or set up ~/comfy-harness"),
]


@dataclass
class HarnessReport:
    returncode: int
    report: dict
    output_dir: Path
    server_log: str
    object_info: dict = field(default_factory=dict)  # /object_info of the pack's nodes
    workflows: dict = field(default_factory=dict)  # name -> the harness's workflow record

    def workflow(self, name: str) -> dict:
        return self.workflows[name]

    def outputs(self, pattern: str) -> list[Path]:
        return sorted(self.output_dir.rglob(pattern))


def write_model_paths(models_dir: Path, yaml_path: Path) -> Path:
    """An extra_model_paths.yaml pointing every folder ComfyUI and the pack use into ``models_dir``."""
    lines = ["st2v_tests:", f"  base_path: {models_dir}"]
    lines += [f"  {name}: {name}" for name in MODEL_FOLDERS]
    yaml_path.write_text("\n".join(lines) + "\n")
    return yaml_path


def run_comfy_python(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a helper script with ComfyUI's interpreter (first argument: the ComfyUI root)."""
    install = find_comfyui()
    return subprocess.run([install.python, str(script), str(install.root), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env={**os.environ, **SINGLE_THREAD})


def run_workflows(workflows: Mapping[str, dict], workdir: Path, expect: Mapping[str, str] | None = None,
                  models_dir: Optional[Path] = None, server_args: tuple[str, ...] = (), timeout: float = 300,
                  inputs: tuple[Path, ...] = ()) -> HarnessReport:
    """Post API workflows (name -> graph) to one server session; ``expect`` defaults to success.
    ``inputs``: files copied into ComfyUI's input folder (for LoadImage / LoadVideo)."""
    install = find_comfyui()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(RUN_WORKFLOW), "--pack", str(REPO), "--comfy-root", str(install.root),
           "--python", install.python, "--output-dir", str(workdir / "output"), "--report", str(workdir / "report.json"),
           "--server-log", str(workdir / "server.log"), "--object-info", str(workdir / "object_info.json"),
           "--timeout", str(timeout), "--compact"]
    for name, graph in workflows.items():
        path = workdir / f"{name}.json"
        path.write_text(json.dumps(graph, indent=1))
        cmd += ["--workflow", str(path), "--expect", (expect or {}).get(name, "success")]
    cmd += [f"--input={path}" for path in inputs]
    if models_dir is not None:
        yaml_path = write_model_paths(models_dir, workdir / "extra_model_paths.yaml")
        cmd += ["--server-arg=--extra-model-paths-config", f"--server-arg={yaml_path}"]
    cmd += [f"--server-arg={arg}" for arg in server_args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * (len(workflows) + 1) + 300,
                          env={**os.environ, **SINGLE_THREAD})
    report_path = workdir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    log_path = workdir / "server.log"
    info_path = workdir / "object_info.json"
    result = HarnessReport(done.returncode, report, workdir / "output", log_path.read_text() if log_path.exists() else "",
                           json.loads(info_path.read_text()) if info_path.exists() else {})
    for name, record in zip(workflows, report.get("workflows", [])):
        result.workflows[name] = record
    if not report:
        raise RuntimeError(f"the harness wrote no report (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return result


def summarize(result: HarnessReport) -> str:
    """A few lines per workflow, for assertion messages and the logs."""
    server = result.report.get("server", {})
    lines = [f"harness exit {result.returncode}; pack imported: {server.get('pack_imported')}; "
             f"startup {server.get('startup_s')} s; import error: {server.get('import_error')}"]
    for name, record in result.workflows.items():
        line = f"  {name}: {record.get('status')} in {record.get('server_execution_s')} s"
        error = record.get("execution_error") or {}
        if error:
            line += f" ({error.get('node_type')}: {error.get('exception_type')}: {str(error.get('exception_message'))[:300]})"
        if record.get("validation_error"):
            line += f" (invalid: {json.dumps(record.get('node_errors'))[:300]})"
        lines.append(line)
    return "\n".join(lines)
