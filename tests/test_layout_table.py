"""The layout table (``checkpoints/layouts.py``) is the one answer to "what is this file or folder":
every detector in it is exercised by a tiny file or folder read through ``inspect``, and a row added
to it (here a made-up one) is recognised by inspect, the CLI's discovery, the node menus and the
loaders' messages without a change anywhere else."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import torch

from pack_loader import load_pack
from streaming_core.checkpoints import layouts
from streaming_core.checkpoints.enhancer import find_enhancer_files
from streaming_core.checkpoints.inspect import inspect_path
from streaming_core.checkpoints.layouts import LAYOUTS, ROLES, Layout, detect_file_layout
from streaming_core.checkpoints.modelscope import load_modelscope_unet
from streaming_core.cli.generate import find_st2v
from streaming_core.errors import CheckpointError
from streaming_core.state_files import save_safetensors

CHOICES = load_pack().nodes.choices

# the fewest tensor names each file layout is told by
FILE_EXAMPLES = {
    "streamingt2v": ["base_model.conv_in.weight", "unet.controlnet_cond_embedding.conv_in.weight"],
    "vidxtend": ["unet.cross_attention_merger_mid_block.norm.weight", "controlnet.conv_in.weight"],
    "modelscope_unet": ["conv_in.weight", "down_blocks.0.resnets.0.conv1.weight", "transformer_in.proj_in.weight"],
    "streamingt2v_denoiser": ["conv_in.weight", "down_blocks.0.resnets.0.conv1.weight",
                              "transformer_in.proj_in.weight", "cross_attention_merger_mid_block.norm.weight"],
    "msvid2vid_unet": ["input_blocks.0.0.weight", "input_blocks.1.0.temopral_conv.conv1.0.weight"],
    "clip_vision": ["vision_model.embeddings.patch_embedding.weight", "visual_projection.weight"],
    "open_clip": ["visual.conv1.weight", "visual.transformer.resblocks.0.attn.in_proj_weight", "logit_scale"],
    "clip_text": ["text_model.embeddings.token_embedding.weight"],
    "sd_checkpoint": ["first_stage_model.encoder.conv_in.weight", "model.diffusion_model.out.0.weight"],
    "ldm_vae": ["encoder.down.0.block.0.conv1.weight"],
    "diffusers_vae": ["encoder.conv_in.weight", "decoder.conv_in.weight"],
    "raft": ["feature_encoder.convnormrelu.0.weight", "update_block.encoder.convc1.weight"],
}


def _write(path: Path, keys) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors({k: torch.zeros(2) for k in keys}, path)
    return path


def _msvid2vid_folder(root: Path) -> Path:
    folder = root / "ms"
    folder.mkdir()
    torch.save({k: torch.zeros(2) for k in FILE_EXAMPLES["msvid2vid_unet"]}, folder / layouts.MSVID2VID_UNET_FILE)
    return folder


def _vidxtend_folder(root: Path) -> Path:
    unet = root / "vx" / "unet" / "diffusion_pytorch_model.safetensors"
    _write(unet, ["conv_in.weight", "cross_attention_merger_x.w"])
    (root / "vx" / "controlnet").mkdir()
    return root / "vx"


def _modelscope_folder(root: Path) -> Path:
    _write(root / "t2v" / "unet" / "diffusion_pytorch_model.safetensors", FILE_EXAMPLES["modelscope_unet"])
    return root / "t2v"


def _sdvsr_folder(root: Path) -> Path:
    _write(root / "vsr" / "unet" / "diffusion_pytorch_model.safetensors", ["conv_in.weight"])
    _write(root / "vsr" / "controlnet" / "diffusion_pytorch_model.safetensors", ["conv_in.weight"])
    return root / "vsr"


FOLDER_EXAMPLES = {"vidxtend_folders": _vidxtend_folder, "msvid2vid_folder": _msvid2vid_folder,
                   "modelscope_folder": _modelscope_folder, "sdvsr_folder": _sdvsr_folder}


def test_every_detector_in_the_table_has_an_example_that_inspect_recognises(tmp_path):
    detected = {row.name for row in LAYOUTS.values() if row.detect is not None}
    assert detected == set(FILE_EXAMPLES) | set(FOLDER_EXAMPLES), "give a new layout's detector an example here"
    for name, keys in FILE_EXAMPLES.items():
        assert inspect_path(_write(tmp_path / f"{name}.safetensors", keys)).layout == name, name
    for name, make in FOLDER_EXAMPLES.items():
        assert inspect_path(make(tmp_path)).layout == name, name


def test_detection_order_and_the_fallback():
    # VidXTend's marks win over official prefixes added to it; a lone StreamingT2V part is still StreamingT2V
    assert detect_file_layout(FILE_EXAMPLES["vidxtend"] + ["image_encoder.model.visual.conv1.weight"]) == "vidxtend"
    assert detect_file_layout(["resampler.context_embedding.weight"]) == "streamingt2v"
    assert detect_file_layout(["resampler.context_embedding.weight", "ldm_vae_free.x"]) == "streamingt2v"
    assert detect_file_layout(["first_stage_model.x", "resampler.context_embedding.weight"]) == "sd_checkpoint"
    assert detect_file_layout(["foo.weight"]) == "unknown"


def test_every_row_is_consistent():
    for row in LAYOUTS.values():
        assert set(row.roles) <= set(ROLES), row.name
        assert {role for role, _ in row.role_needs} <= set(row.roles), row.name
        assert all(LAYOUTS[c].kind == "file" for c in row.companions), row.name
        assert (row.detect is None) == (row.kind == "listing"), row.name
        assert bool(row.file_names) <= bool(row.search), f"{row.name}: where does discovery look for it?"
        if row.loader:
            importlib.import_module(f"streaming_core.checkpoints.{row.loader}")


@pytest.fixture
def new_rows(monkeypatch):
    """Two made-up layouts, each one row: a StreamingT2V repack file and an upscaler folder."""
    def add():
        monkeypatch.setitem(LAYOUTS, "fake_repack", Layout(
            "fake_repack", "a made-up StreamingT2V repack (fake_repack.* keys)", "the StreamingT2V model",
            detect=lambda keys: any(k.startswith("fake_repack.") for k in keys), roles=("streamingt2v",),
            loader="st2v", components=(("everything", "fake_repack."),),
            file_names=("fake-repack.safetensors",), search=("streamingt2v", "checkpoints")))
        monkeypatch.setitem(LAYOUTS, "fake_upscaler", Layout(
            "fake_upscaler", "a made-up upscaler folder (net/ + fake_upscaler.json)", "the x4 video upscaler",
            kind="folder", detect=lambda view: view.has_file("fake_upscaler.json"), roles=("upscaler",),
            loader="sdvsr", components=(("network", "net/"),), complete=True))
    return add


def test_a_new_row_is_recognised_everywhere(tmp_path, monkeypatch, new_rows):
    repack = _write(tmp_path / "streamingt2v" / "fake-repack.safetensors", ["fake_repack.w"])
    in_checkpoints = _write(tmp_path / "checkpoints" / "Fake_Repack-fp16.safetensors", ["fake_repack.w"])
    _write(tmp_path / "checkpoints" / "sd15.safetensors", ["first_stage_model.encoder.conv_in.weight"])
    upscaler = _write(tmp_path / "stream_diffvsr" / "mine" / "net" / "model.safetensors", ["w"]).parent.parent
    (upscaler / "fake_upscaler.json").write_text("{}")
    monkeypatch.setenv("STREAMING_MODELS_DIR", str(tmp_path))

    def seen():
        try:
            load_modelscope_unet(repack)
        except CheckpointError as exc:
            refusal = str(exc)
        try:
            find_enhancer_files([repack])
        except CheckpointError as exc:
            enhancer_refusal = str(exc)
        return {"inspect file": inspect_path(repack).layout, "inspect folder": inspect_path(upscaler).layout,
                "models root": inspect_path(tmp_path).subfolders["stream_diffvsr/"],
                "cli discovery": find_st2v(tmp_path), "st2v menu": CHOICES.st2v_models(),
                "upscaler menu": CHOICES.sdvsr_models(), "modelscope loader": refusal,
                "enhancer loader": enhancer_refusal}

    before = seen()
    assert before["inspect file"] == "unknown" and before["inspect folder"] == "models_root"
    assert before["cli discovery"] is None and before["upscaler menu"] == []
    assert "checkpoints/Fake_Repack-fp16.safetensors" not in before["st2v menu"]
    assert "not a ModelScope text-to-video UNet" in before["modelscope loader"]

    new_rows()
    after = seen()
    assert after["inspect file"] == "fake_repack" and after["inspect folder"] == "fake_upscaler"
    assert [c.label for c in inspect_path(upscaler).components] == ["network"]
    assert before["models root"] == "1 weight file in its subfolders"
    assert after["models root"] == "model folder mine/ (a made-up upscaler folder)"
    assert after["cli discovery"] == repack
    assert after["st2v menu"] == ["fake-repack.safetensors", "checkpoints/Fake_Repack-fp16.safetensors"]
    assert in_checkpoints.exists() and after["upscaler menu"] == ["mine"]
    assert "StreamingT2V checkpoint" in after["modelscope loader"] and "--st2v" in after["modelscope loader"]
    assert "a made-up StreamingT2V repack" in after["enhancer loader"]


def test_the_stock_versus_streamingt2v_denoiser_rule():
    config_type = dataclasses.make_dataclass("Config", [("apm", bool), ("cam_mergers", bool)])
    config = lambda apm, cam: config_type(apm, cam)  # noqa: E731
    layouts.check_unet3d_kind(config(False, False), "modelscope_unet")
    layouts.check_unet3d_kind(config(True, True), "streamingt2v_denoiser")
    with pytest.raises(ValueError, match="StreamingT2V denoiser alone, not a stock ModelScope UNet"):
        layouts.check_unet3d_kind(config(True, True), "modelscope_unet")
    with pytest.raises(ValueError, match="only some of the CAM/APM layers"):
        layouts.check_unet3d_kind(config(True, False), "streamingt2v_denoiser")
