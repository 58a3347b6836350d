"""Tiny weight files in every StreamingT2V source layout, written once per test session from the one
tiny model of ``st2v_shared`` (so every layout must load back to exactly that model).

Import the ``weight_files`` fixture into a test module to use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from st2v_shared import tiny_model

SPEC_KEYS = "st2v_official_keys.json"


_WRITTEN: dict[str, dict] = {}  # a fixture imported into several modules runs once per module: written once here


@pytest.fixture(scope="session")
def weight_files(tmp_path_factory) -> dict:
    if "files" not in _WRITTEN:
        _WRITTEN["files"] = _write_all(tmp_path_factory.mktemp("weights"))
    return _WRITTEN["files"]


def _write_all(d: Path) -> dict:
    from streaming_core.tiny import vidxtend as tv
    from streaming_core.tiny.st2v import write_tiny_checkpoint, write_tiny_safetensors

    model = tiny_model()
    folders = d / "vidxtend"
    tv.write_vidxtend_folders(model, folders)
    tv.write_vidxtend_folders(model, folders, dtype=torch.float16, variant=".fp16")  # the hub has both
    return {
        "model": model,
        "dir": d,
        "official": write_tiny_checkpoint(model, d / "streaming_t2v.ckpt"),
        "ours": write_tiny_safetensors(model, d / "streaming_t2v.safetensors"),
        "vidxtend": tv.write_vidxtend_file(model, d / "vidxtend.safetensors"),
        "vidxtend_fp16": tv.write_vidxtend_file(model, d / "vidxtend.fp16.safetensors", torch.float16),
        "folders": folders,
        "clip_vision": tv.write_clip_vision_file(model, d / "clip_vision" / tv.CLIP_VISION_FILE),
        "open_clip": tv.write_open_clip_file(model, d / tv.OPEN_CLIP_FILE),
    }


def official_spec(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "specs" / SPEC_KEYS).read_text())


def meta_state_dict(spec: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """The full-size official tensors under ``prefix`` as meta tensors (names and shapes, no memory)."""
    return {e["key"]: torch.empty(e["shape"], device="meta") for e in spec["entries"] if e["key"].startswith(prefix)}


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:10]
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
