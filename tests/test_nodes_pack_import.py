"""The pack imports the way ComfyUI imports it, from any folder name, without ComfyUI installed, and
cheaply: ComfyUI imports every custom node pack at start-up, so the model libraries wait for a node
to run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pack_loader import REPO, load_pack

# nodes.py::load_custom_node: the module is named after the folder path ('.' -> '_x_'), loaded from
# the folder's __init__.py with spec_from_file_location, and registered in sys.modules first.
LOAD_LIKE_COMFYUI = textwrap.dedent("""
    import importlib.util, json, sys
    path = sys.argv[1]
    name = path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, path + "/__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    host_modules = sorted(m for m in sys.modules if m in ("folder_paths", "server", "nodes") or m.split(".")[0] == "comfy")
    top_level = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps({"nodes": sorted(module.NODE_CLASS_MAPPINGS), "names": module.NODE_DISPLAY_NAME_MAPPINGS,
                      "host_modules": host_modules, "top_level": top_level}))
""")
# Imported by the loaders and pipelines when a node runs, never by importing the pack.
HEAVY = ("diffusers", "transformers", "open_clip", "huggingface_hub", "safetensors", "torchvision", "scipy")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("comfyui_custom_nodes")
    folder = tmp_path / "ComfyUI-Streaming-Long-Video.v0.1"
    folder.symlink_to(REPO)
    done = subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI, str(folder)], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pack_loads_from_a_dashed_dotted_folder_without_comfyui(loaded):
    assert "ST2VRandomizedBlendModel" in loaded["nodes"]
    assert set(loaded["names"]) == set(loaded["nodes"])
    assert loaded["host_modules"] == [], "importing the pack must not import ComfyUI modules"


def test_importing_the_pack_leaves_the_model_libraries_alone(loaded):
    heavy = sorted(set(HEAVY) & set(loaded["top_level"]))
    assert heavy == [], (f"importing the pack imports {heavy}: import the core module behind it inside the node "
                         "function (see nodes/upscale.py)")

