"""The pack imports the way ComfyUI imports it, from any folder name, without ComfyUI installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from pack_loader import REPO

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
    print(json.dumps({"nodes": sorted(module.NODE_CLASS_MAPPINGS), "names": module.NODE_DISPLAY_NAME_MAPPINGS,
                      "host_modules": host_modules}))
""")


def test_pack_loads_from_a_dashed_dotted_folder_without_comfyui(tmp_path):
    folder = tmp_path / "ComfyUI-Streaming-Long-Video.v0.1"
    folder.symlink_to(REPO)
    done = subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI, str(folder)], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "ST2VRandomizedBlendModel" in result["nodes"]
    assert set(result["names"]) == set(result["nodes"])
    assert result["host_modules"] == [], "importing the pack must not import ComfyUI modules"
