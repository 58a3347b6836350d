"""Regenerate tests/data/native_nodes.json from a real ComfyUI's /object_info.

Usage: python3 tests/comfyui_scripts/dump_native_nodes.py [EXTRA_NODE_ID ...]

Starts the harness's headless ComfyUI (no custom nodes), reads /object_info and keeps the native
nodes our workflows and tests use: the ids already in the file plus any given on the command line.
The workflow checker validates workflows against this file, so CI needs no ComfyUI.

File dropdowns (models, input images) depend on the install; to tell them apart from fixed
choices, the server runs with a sentinel file in every model folder and in the input folder, and
every combo that lists the sentinel is recorded under "file_inputs" (the sentinel itself removed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "native_nodes.json"
SHARED = Path(os.environ.get("STREAMING_SHARED_DIR", REPO.parent / "shared"))
HOME = Path(os.environ.get("COMFY_HARNESS_HOME", Path.home() / "comfy-harness"))


SENTINEL = "__st2v_sentinel__"
MODEL_FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
                 "embeddings", "vae_approx", "controlnet", "gligen", "upscale_models", "hypernetworks", "photomaker",
                 "model_patches", "audio_encoders")


def _sentinel_tree(workdir: str) -> list[str]:
    """Model folders with one sentinel file each, as --extra-model-paths-config arguments."""
    base = os.path.join(workdir, "sentinel_models")
    lines = ["st2v_sentinel:", f"  base_path: {base}"]
    for name in MODEL_FOLDERS:
        os.makedirs(os.path.join(base, name), exist_ok=True)
        Path(base, name, SENTINEL + ".safetensors").write_bytes(b"")
        lines.append(f"  {name}: {name}")
    yaml_path = os.path.join(workdir, "sentinel_paths.yaml")
    Path(yaml_path).write_text("\n".join(lines) + "\n")
    return ["--extra-model-paths-config", yaml_path]


def _split_file_inputs(nodes: dict) -> dict[str, list[str]]:
    """Remove the sentinel from combos; return {node id: [inputs that list files]}."""
    found = {}
    for node_id, node in nodes.items():
        for section in ("required", "optional"):
            for name, spec in (node.get("input", {}).get(section) or {}).items():
                choices = spec[0] if isinstance(spec[0], list) else (spec[1].get("options") if len(spec) > 1 and isinstance(spec[1], dict) else None)
                if not isinstance(choices, list) or not any(SENTINEL in str(c) for c in choices):
                    continue
                choices[:] = [c for c in choices if SENTINEL not in str(c)]
                found.setdefault(node_id, []).append(name)
    return found


def main(extra_ids: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("run_workflow", SHARED / "tools" / "comfy_harness" / "run_workflow.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)

    wanted = set(extra_ids)
    if OUT.exists():
        wanted |= set(json.loads(OUT.read_text())["nodes"])
    with tempfile.TemporaryDirectory(prefix="st2v_object_info_") as workdir:
        server = harness.Server(str(HOME / "venv" / "bin" / "python"), str(HOME / "ComfyUI"), workdir, harness.free_port(),
                                os.path.join(workdir, "output"), None,
                                ["--disable-all-custom-nodes", *_sentinel_tree(workdir)])
        for ext in (".png", ".mp4"):
            Path(server.dirs["input"], SENTINEL + ext).write_bytes(b"")
        server.start()
        try:
            server.wait_ready(240)
            code, info = server.client.get("/object_info", timeout=120)
            code_v, stats = server.client.get("/system_stats", timeout=30)
        finally:
            server.stop()
    if code != 200:
        raise SystemExit(f"/object_info answered {code}")
    missing = sorted(wanted - set(info))
    if missing:
        raise SystemExit(f"not native in this ComfyUI: {missing}")
    version = stats.get("system", {}).get("comfyui_version", "?") if code_v == 200 else "?"
    nodes = {k: info[k] for k in sorted(wanted)}
    file_inputs = _split_file_inputs(nodes)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "about": "Subset of /object_info of a real ComfyUI (native nodes only), written by "
                 "tests/comfyui_scripts/dump_native_nodes.py through the comfy harness. The workflow checker "
                 "validates example_workflows/ against it, so CI needs no ComfyUI. Re-run the script to refresh it or "
                 "to add node ids.",
        "comfyui_version": version,
        "file_inputs": file_inputs,
        "nodes": nodes,
    }, indent=1, sort_keys=False) + "\n")
    print(f"wrote {len(wanted)} native node definitions (ComfyUI {version}) to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
