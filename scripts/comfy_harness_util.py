"""Running the pack in a real ComfyUI from pytest: find one, post API workflows, read the results.

A real ComfyUI is used when one is there and the tests skip when none is configured (CI has none):
* ``COMFYUI_PATH``: a ComfyUI checkout; its python is ``COMFYUI_PYTHON``, else the ``venv/`` or ``.venv/``
  inside the checkout, else ``python3`` on the PATH;
* else ``COMFY_HARNESS_HOME`` or ``~/comfy-harness`` as set up by shared/tools/comfy_harness/setup.sh
  (``ComfyUI/`` and ``venv/``).
A ComfyUI named explicitly (``COMFYUI_PATH`` or ``COMFY_HARNESS_HOME`` set) that is unusable (no main.py,
no python, a python without ComfyUI's requirements, no shared harness) does not skip: the tests fail
with what is wrong and how to fix it. With nothing set, the tests skip when ``~/comfy-harness`` is not set up
or when the shared harness script is absent (the reason says which).
Workflows go through the shared harness (``run_workflow.py``): it links the pack into
``custom_nodes``, starts ``main.py --cpu`` with only this pack, posts each workflow and reports.

Usage in a test module::

    from comfy_harness_util import comfyui, run_workflows
    pytestmark = comfyui          # marker + skip when no ComfyUI is configured

    report = run_workflows({"blend": api_graph}, tmp_dir, models_dir=models)
    assert report.workflow("blend")["status"] == "success"
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_workflow_script() -> Path:
    """The shared harness script: in the project's shared/ folder (``../shared`` beside the clone, or
    ``STREAMING_SHARED_DIR``), which is not part of the repository. Read from the environment on each call."""
    shared = Path(os.environ.get("STREAMING_SHARED_DIR", REPO.parent / "shared"))
    return shared / "tools" / "comfy_harness" / "run_workflow.py"


SHARED = Path(os.environ.get("STREAMING_SHARED_DIR", REPO.parent / "shared"))
RUN_WORKFLOW = run_workflow_script()
# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the thread pool's
# spinning makes a tiny forward ~5x slower (0.36 s vs 1.97 s for the blend tests' 2 steps, measured).
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MODEL_FOLDERS = ("checkpoints", "diffusion_models", "text_encoders", "vae", "clip_vision", "loras",
                 "upscale_models", "streamingt2v", "stream_diffvsr")


@dataclass(frozen=True)
class ComfyInstall:
    root: Path      # the ComfyUI folder (main.py)
    python: str     # the interpreter ComfyUI runs with
    explicit: bool = False  # named by COMFYUI_PATH / COMFY_HARNESS_HOME rather than found at the default place


def locate_comfyui() -> tuple[Optional[ComfyInstall], Optional[str]]:
    """(the ComfyUI to test against, None), or (None, None) when none is configured (the tests skip),
    or (None, what is wrong and how to fix it) when one is configured explicitly but unusable (the
    tests fail: a COMFYUI_PATH with a typo must not turn the ComfyUI tests into silent skips)."""
    if os.environ.get("COMFYUI_PATH"):
        root = Path(os.environ["COMFYUI_PATH"]).expanduser()
        where = f"COMFYUI_PATH={os.environ['COMFYUI_PATH']}"
        if not (root / "main.py").is_file():
            what = "not a ComfyUI checkout" if root.is_dir() else "no such folder"
            return None, (f"{where} has no main.py ({what}): "
                          "point COMFYUI_PATH at the ComfyUI folder that holds main.py, or unset it to use "
                          "~/comfy-harness (or to skip the ComfyUI tests)")
        python, problem = _comfyui_python(root)
        if problem:
            return None, f"{where}: {problem}"
        install = ComfyInstall(root, python, explicit=True)
    elif os.environ.get("COMFY_HARNESS_HOME"):
        home = Path(os.environ["COMFY_HARNESS_HOME"]).expanduser()
        root, python = home / "ComfyUI", home / "venv" / "bin" / "python"
        where = f"COMFY_HARNESS_HOME={os.environ['COMFY_HARNESS_HOME']}"
        missing = [str(p) for p in (root / "main.py", python) if not p.is_file()]
        if missing:
            return None, (f"{where} lacks {' and '.join(missing)}: run shared/tools/comfy_harness/setup.sh with that "
                          "COMFY_HARNESS_HOME, or point it at a harness home that has ComfyUI/ and venv/, or unset it")
        install = ComfyInstall(root, str(python), explicit=True)
    else:  # the default harness home: used when set up, else the tests skip
        home = Path.home() / "comfy-harness"
        root, python = home / "ComfyUI", home / "venv" / "bin" / "python"
        if not ((root / "main.py").is_file() and python.exists()):
            return None, None
        install = ComfyInstall(root, str(python))
    script = run_workflow_script()
    if not script.is_file():
        if not install.explicit:
            return None, None
        return None, (f"{where} is set, but the shared harness {script} is missing: set STREAMING_SHARED_DIR "
                      "to the shared/ folder that holds tools/comfy_harness/run_workflow.py")
    return install, None


def skip_reason() -> str:
    """Why the ComfyUI tests skip when no ComfyUI is named explicitly: the default harness home is not
    set up, or it is set up but the harness script (in the shared/ folder) is absent."""
    home = Path.home() / "comfy-harness"
    script = run_workflow_script()
    if (home / "ComfyUI" / "main.py").is_file() and (home / "venv" / "bin" / "python").exists():
        return (f"{home} is set up, but the harness script {script} is absent: it is in the project's shared/ "
                "folder (../shared beside the clone, or STREAMING_SHARED_DIR), which is not part of the repository; "
                "put that folder there to run the real-ComfyUI tests")
    return (f"no ComfyUI: {home} is not set up and COMFYUI_PATH is not set; set COMFYUI_PATH to a ComfyUI "
            "checkout, or set up the harness with shared/tools/comfy_harness/setup.sh"
            + ("" if script.is_file() else f" (it also needs the shared/ folder, absent: {script.parent.parent.parent})"))


def _comfyui_python(root: Path) -> tuple[Optional[str], Optional[str]]:
    """(an absolute interpreter path, None) or (None, the problem); the harness refuses a bare name."""
    name = os.environ.get("COMFYUI_PYTHON")
    if name:
        found = shutil.which(os.path.expanduser(name))
        if found is None:
            return None, (f"COMFYUI_PYTHON={name} is not an executable file or a command on the PATH: set it to "
                          "the python ComfyUI's requirements are installed in (for example CHECKOUT/venv/bin/python)")
        return os.path.abspath(found), None
    for venv in ("venv", ".venv"):
        if (root / venv / "bin" / "python").exists():
            candidate = root / venv / "bin" / "python"
            if not os.access(candidate, os.X_OK):
                return None, f"{candidate} is not executable: fix the venv, or set COMFYUI_PYTHON to ComfyUI's python"
            return str(candidate), None
    found = shutil.which("python3")
    if found is None:
        return None, ("no python for ComfyUI: the checkout has no venv/ or .venv/ and there is no python3 on the "
                      "PATH; set COMFYUI_PYTHON to the python ComfyUI's requirements are installed in")
    return found, None


def find_comfyui() -> Optional[ComfyInstall]:
    """The ComfyUI to test against, or None (nothing configured, or a configuration problem)."""
    return locate_comfyui()[0]


# What ComfyUI's main.py needs before it can serve; checked once for an explicitly named python.
_PREFLIGHT = "import torch, aiohttp, yaml, safetensors"


@functools.lru_cache(maxsize=None)
def _preflight(python: str) -> Optional[str]:
    try:
        done = subprocess.run([python, "-c", _PREFLIGHT], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **SINGLE_THREAD})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    return None


def require_comfyui() -> ComfyInstall:
    """The ComfyUI to test against; fails the calling test (or fixture) with the configuration problem,
    skips it when none is configured. An explicitly named python is also checked to import what
    ComfyUI's server needs, so a wrong COMFYUI_PYTHON fails here and not as a server that never starts."""
    install, problem = locate_comfyui()
    if problem:
        pytest.fail(problem, pytrace=False)
    if install is None:
        pytest.skip(skip_reason())
    if install.explicit:
        error = _preflight(install.python)
        if error:
            variable = "COMFYUI_PYTHON" if os.environ.get("COMFYUI_PATH") else "COMFY_HARNESS_HOME"
            pytest.fail(f"the python for ComfyUI, {install.python}, cannot run `{_PREFLIGHT}` ({error}): set "
                        f"{variable} to an interpreter with ComfyUI's requirements installed", pytrace=False)
    return install


_INSTALL, _PROBLEM = locate_comfyui()
SKIP_REASON = skip_reason()
# Skip only when nothing is configured. A configuration problem does not skip: every test's fixture
# calls require_comfyui() (through run_workflows / run_comfy_python) and fails with the problem.
comfyui = [
    pytest.mark.comfyui,
    pytest.mark.skipif(_INSTALL is None and _PROBLEM is None, reason=SKIP_REASON),
]


@dataclass
class HarnessReport:
    returncode: int
    report: dict
    output_dir: Path
    server_log: str
    object_info: dict = field(default_factory=dict)  # /object_info of the pack's nodes
    workflows: dict = field(default_factory=dict)  # name -> the harness's workflow record
    interrupted_prompt: Optional[str] = None  # the prompt id run_workflows(interrupt_when=...) interrupted

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
    install = require_comfyui()
    return subprocess.run([install.python, str(script), str(install.root), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env={**os.environ, **SINGLE_THREAD})


def run_check_script(script: Path, timeout: float = 300) -> dict:
    """Run an in-ComfyUI check script (tests/comfyui_scripts/) and return the JSON object its last line
    prints; the script failing as a whole fails here with its stderr."""
    done = run_comfy_python(script, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_workflows(workflows: Mapping[str, dict], workdir: Path, expect: Mapping[str, str] | None = None,
                  models_dir: Optional[Path] = None, server_args: tuple[str, ...] = (), timeout: float = 300,
                  inputs: tuple[Path, ...] = (),
                  interrupt_when: Optional[Callable[[Path], bool]] = None,
                  watch: Optional[Callable[[Path], None]] = None) -> HarnessReport:
    """Post API workflows (name -> graph) to one server session; ``expect`` defaults to success.
    ``inputs``: files copied into ComfyUI's input folder (for LoadImage / LoadVideo).
    ``interrupt_when(output_dir)``: polled while the session runs; the first time it is true, the prompt
    running then is interrupted through ComfyUI's own ``/interrupt`` (what the Cancel button posts), and
    the harness reports that workflow as "interrupted". The harness itself only interrupts a workflow
    that outlives ``timeout``; this interrupts on an event instead (say, a file the run writes), so a test
    does not have to guess how long the run takes to get there on a loaded machine.
    ``watch(output_dir)``: polled the same way, for observers (say, comfy_memory_probe's peak RSS per prompt)."""
    install = require_comfyui()
    workdir.mkdir(parents=True, exist_ok=True)
    output_dir = workdir / "output"
    cmd = [sys.executable, str(run_workflow_script()), "--pack", str(REPO), "--comfy-root", str(install.root),
           "--python", install.python, "--output-dir", str(output_dir), "--report", str(workdir / "report.json"),
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
    session_timeout = timeout * (len(workflows) + 1) + 300
    with open(workdir / "harness_stdout.jsonl", "w") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **SINGLE_THREAD})
        stderr: list[str] = []
        reader = threading.Thread(target=_collect_lines, args=(proc.stderr, stderr), daemon=True)
        reader.start()
        interrupts = []
        try:
            deadline = time.monotonic() + session_timeout
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the harness ran past {session_timeout:.0f} s:\n{''.join(stderr)[-4000:]}")
                if watch is not None:
                    watch(output_dir)
                if interrupt_when is not None and not interrupts and interrupt_when(output_dir):
                    port = _server_port(stderr)
                    prompt_id = _interrupt_running_prompt(port) if port is not None else None
                    if prompt_id is not None:
                        interrupts.append(prompt_id)  # once per session
                time.sleep(0.1)
        finally:
            if proc.poll() is None:  # SIGTERM: the harness stops the server and removes the pack link
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        reader.join(timeout=10)
    report_path = workdir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    log_path = workdir / "server.log"
    info_path = workdir / "object_info.json"
    result = HarnessReport(proc.returncode, report, output_dir, log_path.read_text() if log_path.exists() else "",
                           json.loads(info_path.read_text()) if info_path.exists() else {},
                           interrupted_prompt=interrupts[0] if interrupts else None)
    for name, record in zip(workflows, report.get("workflows", [])):
        result.workflows[name] = record
    if not report:
        raise RuntimeError(f"the harness wrote no report (exit {proc.returncode}):\n{''.join(stderr)[-4000:]}")
    server = report.get("server") or {}
    if not server.get("ready", False):
        details = server.get("log_tail") or "".join(stderr)
        raise RuntimeError(f"ComfyUI did not start ({server.get('error') or 'see the harness output'}; python "
                           f"{install.python}, root {install.root}):\n{details[-4000:]}")
    return result


def _collect_lines(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line)


def _server_port(harness_stderr: list[str]) -> Optional[int]:
    """The port of the server the harness runs now (it logs one line per server start)."""
    ports = [m.group(1) for m in map(_SERVER_LINE.search, list(harness_stderr)) if m]
    return int(ports[-1]) if ports else None


_SERVER_LINE = re.compile(r"server PID \d+ on 127\.0\.0\.1:(\d+)")


def _local_opener():
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy


def running_prompt(port: int) -> tuple[bool, Optional[str]]:
    """(whether ComfyUI's /queue answered, the id of the prompt it runs now or None when idle)."""
    try:
        with _local_opener().open(f"http://127.0.0.1:{port}/queue", timeout=10) as response:
            running = json.loads(response.read()).get("queue_running") or []
    except (OSError, ValueError):  # the server is starting or stopping
        return False, None
    return True, (running[0][1] if running else None)


def _interrupt_running_prompt(port: int) -> Optional[str]:
    """Interrupt the prompt ComfyUI is running now, by its id (a bare /interrupt would leave the flag set
    for the next prompt when none is running). Returns that prompt id, or None when none was running."""
    _, prompt_id = running_prompt(port)
    if prompt_id is None:
        return None
    request = urllib.request.Request(f"http://127.0.0.1:{port}/interrupt", method="POST",
                                     data=json.dumps({"prompt_id": prompt_id}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with _local_opener().open(request, timeout=10):
            pass
    except OSError:  # the server is stopping: try again at the next poll
        return None
    return prompt_id


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
