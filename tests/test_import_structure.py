"""The pack's layering, checked on its source (``scripts/import_graph.py``, stdlib ``ast``, nothing imported):
models < sampling < checkpoints < pipelines < cli/nodes, with the base modules and the noise schedules
below; no import up a floor, no circle, and no function-local import except of a heavy optional
library (or of a pack module that loads one at import time)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ig():
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["import_graph"]


@pytest.fixture(scope="module")
def graph(ig):
    return ig.build_graph()


def test_every_module_has_a_floor(graph):
    assert graph.unplaced() == []


def test_no_import_runs_up_a_floor(graph):
    upward = [f"{e.source} ({a}) -> {e.target} ({b}), line {e.line}" for e, a, b in graph.violations()]
    assert upward == [], "move the shared piece down a floor:\n" + "\n".join(upward)


def test_no_import_circle(graph):
    assert graph.circles() == []


def test_function_local_imports_only_defer_heavy_optional_libraries(graph):
    assert graph.unjustified_local() == [], ("import at the top of the file; only heavy optional libraries "
                                             "(scripts/import_graph.py HEAVY_OPTIONAL) may wait for the function")


def test_importing_the_core_never_imports_comfyui(graph):
    core = [m for m in graph.modules if m.startswith("streaming_core")]
    assert [m for m in core if {"comfy", "folder_paths"} & graph.top_external[m]] == []


# -- the checker itself, on small made-up packs ---------------------------------------------------------
def _pack(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in tmp_path.rglob("*.py")}:
        (folder / "__init__.py").touch()
    return tmp_path


def _graph_of(ig, monkeypatch, root: Path):
    monkeypatch.setattr(ig, "REPO", root)
    return ig.build_graph()


def test_checker_finds_an_upward_import_a_circle_and_a_hidden_local_import(ig, monkeypatch, tmp_path):
    root = _pack(tmp_path, {
        "streaming_core/models/a.py": "from ..pipelines.p import run\n",  # up two floors
        "streaming_core/pipelines/p.py": "def run():\n    from ..checkpoints import c\n",  # hides nothing heavy
        "streaming_core/checkpoints/c.py": "from . import d\n",
        "streaming_core/checkpoints/d.py": "def f():\n    import diffusers\n\nfrom . import c\n",  # c <-> d
    })
    graph = _graph_of(ig, monkeypatch, root)
    assert [(e.source, e.target) for e, _, _ in graph.violations()] == [
        ("streaming_core.models.a", "streaming_core.pipelines.p")]
    assert graph.circles() == [["streaming_core.checkpoints.c", "streaming_core.checkpoints.d"]]
    assert graph.unjustified_local() == ["streaming_core.pipelines.p:2 -> streaming_core.checkpoints.c"]


def test_checker_allows_a_local_import_that_defers_a_heavy_library(ig, monkeypatch, tmp_path):
    root = _pack(tmp_path, {
        "streaming_core/models/heavy.py": "import diffusers\n",
        "streaming_core/pipelines/p.py": "def run():\n    from ..models.heavy import x\n    import zipfile\n",
        "nodes/n.py": "def load():\n    from ..streaming_core.pipelines import p\n",  # p loads nothing heavy
    })
    graph = _graph_of(ig, monkeypatch, root)
    verdicts = {(e.source, e.target): why for e, why in graph.local_import_verdicts()}
    assert verdicts[("streaming_core.pipelines.p", "streaming_core.models.heavy")] == "diffusers"
    assert sorted(graph.unjustified_local()) == ["nodes.n:2 -> streaming_core.pipelines.p",
                                                 "streaming_core.pipelines.p:3 -> zipfile"]


def test_every_heavy_library_says_why(ig):
    assert all(len(reason.split()) >= 4 for reason in ig.HEAVY_OPTIONAL.values())


def test_no_tool_imports_from_tests():
    offenders = []
    for path in sorted((REPO / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            text = ast.unparse(node) if isinstance(node, ast.Call) else ""
            if "sys.path" in text and "tests" in text:
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == [], "move what the tool needs out of tests/ into a module both import"
