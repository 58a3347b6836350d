"""Safe weight loading: plain tensors load, bookkeeping objects become inert, code never runs."""

from __future__ import annotations

import zipfile

import pytest
import torch

from streaming_core.checkpoints import files
from streaming_core.errors import CheckpointError


def _lightning_like_checkpoint(path, tmp_path, monkeypatch):
    """A torch.save'd dict holding a class from a module named like pytorch_lightning's."""
    pkg = tmp_path / "pkgs" / "pytorch_lightning" / "callbacks"
    pkg.mkdir(parents=True)
    (tmp_path / "pkgs" / "pytorch_lightning" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "model_checkpoint.py").write_text(
        "class ModelCheckpoint:\n    def __init__(self):\n        self.best_model_score = 0.25\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    from pytorch_lightning.callbacks.model_checkpoint import ModelCheckpoint  # noqa: E402

    weights = {"unet.conv.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save({"state_dict": weights, "epoch": 3, "callbacks": {"ModelCheckpoint": ModelCheckpoint()}}, path)
    return weights


def test_lightning_checkpoint_loads_with_bookkeeping_placeholders(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    weights = _lightning_like_checkpoint(path, tmp_path, monkeypatch)
    # the real class must not be needed (nor importable) at load time
    import sys

    for name in [m for m in sys.modules if m.startswith("pytorch_lightning")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "pkgs" not in p])
    sd = files.load_state_dict(path)
    assert list(sd) == ["unet.conv.weight"]
    assert torch.equal(sd["unet.conv.weight"], weights["unet.conv.weight"])


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/streaming_core_pwned",))


def test_pickle_naming_os_system_is_refused_by_torch_itself(tmp_path):
    # os.system pickles as posix.system: a module torch's safe loader never lets a file name, so no
    # placeholder can stand in; the file is refused with what it names (other code-running globals
    # become inert placeholders: tests/test_reliability.py)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*names posix\.system.*nothing was run"):
        files.load_state_dict(path)


def test_legacy_non_zip_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil_legacy.bin"
    torch.save({"w": torch.ones(1), "x": _RunsCode()}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError):
        files.load_state_dict(path)


def test_truncated_pickle_checkpoint_is_named(tmp_path):
    path = tmp_path / "big.ckpt"
    torch.save({"state_dict": {"w": torch.randn(256, 256)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        files.load_state_dict(path)


def test_truncated_safetensors_is_named(tmp_path):
    path = tmp_path / "w.safetensors"
    files.save_safetensors({"a": torch.randn(64, 64), "b": torch.randn(3)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        files.load_state_dict(path)


@pytest.mark.parametrize("keep", [10, 0.5, 0.9])
def test_truncated_legacy_pickle_is_named(tmp_path, keep):
    """The old (non-zip) format cut off anywhere: EOFError / UnpicklingError, sometimes without any message."""
    path = tmp_path / "old.pth"
    torch.save({"w": torch.randn(64, 64)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=str(path.name)):
        files.load_state_dict(path)


@pytest.mark.parametrize("header", [b"[1, 2]", b'{"a": {"dtype": "F32", "shape": [1]}}', b'{"a": {"data_offsets": 3}}'])
def test_malformed_safetensors_header_is_named(tmp_path, header):
    import struct

    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        files.load_state_dict(path)


def test_missing_empty_and_folder_paths(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        files.load_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        files.load_state_dict(tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match="folder"):
        files.load_state_dict(tmp_path)


def test_file_without_tensors_is_rejected(tmp_path):
    path = tmp_path / "config.pt"
    torch.save({"lr": 0.1, "name": "x"}, path)
    with pytest.raises(CheckpointError, match="no tensors"):
        files.load_state_dict(path)


def test_save_is_atomic_and_roundtrips(tmp_path):
    path = tmp_path / "out" / "w.safetensors"
    sd = {"x": torch.randn(4, 5), "y": torch.arange(3)}
    files.save_safetensors(sd, path, metadata={"format": "test"})
    assert not list(path.parent.glob("*.partial"))
    back = files.load_state_dict(path)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert files.read_safetensors_header(path)["x"]["shape"] == [4, 5]


def test_duplicate_keys_across_shards_are_an_error(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    files.save_safetensors({"k": torch.ones(1)}, a)
    files.save_safetensors({"k": torch.ones(1)}, b)
    with pytest.raises(CheckpointError, match="repeats"):
        files.load_state_dicts([a, b])
