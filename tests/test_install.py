"""`pip install .` and `pip install -e .` give an importable `streaming_core` and the `streaming-long-video`
command from any directory, and install nothing else (no top-level `nodes`, which would shadow ComfyUI's).

The install goes into a throw-away venv that sees this interpreter's packages (torch, diffusers, ...)
through a .pth file, with --no-deps --no-build-isolation so nothing is downloaded."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # two pip installs, ~5 s together

# what a clone holds that matters to the build (tests, docs and workflows do not)
PROJECT_FILES = ("pyproject.toml", "README.md", "__init__.py", "streaming_core", "nodes")


def _skip_unless_buildable_offline() -> None:
    """The build runs without isolation (nothing downloaded): this interpreter's pip and setuptools build it
    (setuptools 64+ for editable installs, and 70.1+ or the wheel package for wheels)."""
    for module in ("pip", "setuptools"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"building the package offline needs {module} in this interpreter ({sys.executable})")
    found = importlib.metadata.version("setuptools")  # not imported: it would patch this process's distutils
    version = tuple(int(part) for part in found.split(".")[:2] if part.isdigit())
    if version < (64,) or (version < (70, 1) and importlib.util.find_spec("wheel") is None):
        pytest.skip(f"setuptools {found} here cannot build a wheel offline (needs 70.1+, or 64+ with the wheel "
                    "package)")


def _venv(where: Path) -> Path:
    _skip_unless_buildable_offline()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    site = Path(sysconfig.get_paths(vars={"base": str(where), "platbase": str(where)})["purelib"])
    (site / "outer_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where / "bin" / "python"


def _project_copy(where: Path) -> Path:
    where.mkdir()
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, where / name)
    return where


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_installed_core_and_command_work_from_another_directory(tmp_path, editable):
    python = _venv(tmp_path / "venv")
    project = _project_copy(tmp_path / "clone")
    cmd = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(cmd + (["-e", str(project)] if editable else [str(project)]), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    probe = ("import importlib.util, streaming_core, streaming_core.cli; "
             "print(streaming_core.__file__); print(importlib.util.find_spec('nodes'))")
    done = subprocess.run([str(python), "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    where, nodes = done.stdout.split()[-2:]
    expected = project if editable else tmp_path / "venv"
    assert Path(where).resolve().is_relative_to(expected.resolve()), where
    assert nodes == "None", f"the pack's nodes/ was installed as a top-level `nodes`: {nodes}"

    command = tmp_path / "venv" / "bin" / "streaming-long-video"
    done = subprocess.run([str(command), "--help"], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: streaming-long-video") and "make-tiny" in done.stdout, done.stdout
