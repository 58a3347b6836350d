"""``inspect``: the detected layout, parts, parameter counts and dtypes of every weight layout, read from
headers only (full-size layouts are checked on sparse files that hold no tensor data at all)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from streaming_core.checkpoints import files as files_module
from streaming_core.checkpoints.image_encoder import open_clip_to_hf, to_open_clip_visual
from streaming_core.checkpoints.inspect import inspect_path
from streaming_core.checkpoints.layouts import LAYOUTS, detect_file_layout
from streaming_core.checkpoints.vidxtend import from_official
from streaming_core.cli import main
from weights_shared import meta_state_dict, official_spec, weight_files  # noqa: F401

_CODES = {torch.float16: ("F16", 2), torch.float32: ("F32", 4)}


def write_sparse_safetensors(path, tensors: dict[str, torch.Tensor], dtype=torch.float16, metadata=None):
    """A valid safetensors file of full-size shapes whose data region is a hole (no disk, no bytes read)."""
    code, size = _CODES[dtype]
    header = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for key in sorted(tensors):
        n = math.prod(tensors[key].shape) * size
        header[key] = {"dtype": code, "shape": list(tensors[key].shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return path


@pytest.fixture
def no_tensor_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("inspect must not load tensors")

    monkeypatch.setattr(files_module, "load_safetensors", refuse)
    monkeypatch.setattr("safetensors.torch.load_file", refuse)


def _params(module) -> int:
    return sum(p.numel() for p in module.state_dict().values())


def _component(result, label):
    return next(c for c in result.components if c.label == label)


def test_tiny_streamingt2v_layouts(weight_files):
    model = weight_files["model"]
    official = inspect_path(weight_files["official"])
    assert official.layout == "streamingt2v" and official.lazy  # the zip pickle is memory-mapped
    assert _component(official, "denoising UNet").params == _params(model.unet)
    assert _component(official, "CAM encoder").params == _params(model.cam)
    assert _component(official, "OpenCLIP image encoder").tensors == 20 + 6  # visual tower + text leftovers
    ours = inspect_path(weight_files["ours"])
    assert ours.layout == "streamingt2v" and any("this pack's safetensors form" in n for n in ours.notes)
    single = inspect_path(weight_files["vidxtend_fp16"])
    assert single.layout == "vidxtend"
    assert _component(single, "denoising UNet").where == "unet."
    assert _component(single, "denoising UNet").params == _params(model.unet)
    assert _component(single, "CAM encoder").params == _params(model.cam)
    assert set(_component(single, "VAE").dtypes) == {"float16"}
    assert any("no image encoder" in n for n in single.notes)
    folders = inspect_path(weight_files["folders"])
    assert folders.layout == "vidxtend_folders"
    assert [c.params for c in folders.components] == [c.params for c in single.components]
    assert _component(folders, "CAM encoder").file == "diffusion_pytorch_model.safetensors"


def test_image_encoder_layouts(weight_files):
    clip_vision = inspect_path(weight_files["clip_vision"])
    assert clip_vision.layout == "clip_vision"
    assert _component(clip_vision, "image projection").params == 64 * 1024
    open_clip = inspect_path(weight_files["open_clip"])
    assert open_clip.layout == "open_clip"
    assert _component(open_clip, "image tower").params == _params(weight_files["model"].image_encoder)
    for result in (clip_vision, open_clip):
        assert any("width 64, 1 layer, 1024-d embedding" in n for n in result.notes), result.notes


def test_other_formats_of_this_pack(tmp_path):
    from streaming_core.state_files import save_safetensors
    from streaming_core.tiny.enhancer import write_tiny_msvid2vid
    from streaming_core.tiny.modelscope import build_tiny_modelscope_unet, write_tiny_modelscope

    msvid = write_tiny_msvid2vid(tmp_path / "Video-to-Video")
    folder = inspect_path(tmp_path / "Video-to-Video")
    assert folder.layout == "msvid2vid_folder"
    assert {f.path.name: f.layout for f in folder.files} == {
        "non_ema_0035000.pth": "msvid2vid_unet", "open_clip_pytorch_model.bin": "open_clip",
        "v2-1_512-ema-pruned.ckpt": "sd_checkpoint"}
    assert inspect_path(msvid["vae"]).components[0].label == "VAE"
    unet_file = write_tiny_modelscope(build_tiny_modelscope_unet(), tmp_path / "text-to-video-ms-1.7b")
    assert inspect_path(unet_file).layout == "modelscope_unet"
    assert inspect_path(tmp_path / "text-to-video-ms-1.7b").layout == "modelscope_folder"

    def x():  # Stream-DiffVSR hub folder and RAFT: only names matter for the layout
        return torch.zeros(2)

    vsr = tmp_path / "stream_diffvsr"
    save_safetensors({"conv_in.weight": x(), "down_blocks.0.resnets.0.conv1.weight": x()},
                     vsr / "unet" / "m.safetensors")
    save_safetensors({"controlnet_cond_embedding.conv_in.weight": x()}, vsr / "controlnet" / "m.safetensors")
    save_safetensors({"encoder.layers.0.weight": x()}, vsr / "vae" / "m.safetensors")
    save_safetensors({"text_model.embeddings.token_embedding.weight": x()}, vsr / "text_encoder" / "model.safetensors")
    torch.save({"feature_encoder.convnormrelu.0.weight": x(), "update_block.encoder.convc1.weight": x()},
               vsr / "raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    result = inspect_path(vsr)
    assert result.layout == "sdvsr_folder" and [c.tensors for c in result.components] == [2, 1, 1, 1]
    assert [f.layout for f in result.files] == ["raft"]
    save_safetensors({"encoder.conv_in.weight": x(), "decoder.conv_in.weight": x()}, tmp_path / "vae.safetensors")
    assert inspect_path(tmp_path / "vae.safetensors").layout == "diffusers_vae"


def test_unknown_file_lists_its_names(tmp_path):
    from streaming_core.state_files import save_safetensors

    save_safetensors({"foo.weight": torch.zeros(1), "bar.bias": torch.zeros(1)}, tmp_path / "x.safetensors")
    result = inspect_path(tmp_path / "x.safetensors")
    assert result.layout == "unknown" and any("bar, foo" in n for n in result.notes)


def test_full_size_files_from_headers_only(shared_dir, tmp_path, no_tensor_reads):
    """The real sizes: VidXTend fp16 (5.1 GB), our conversion of the official checkpoint (12.9 GB in
    fp32), and ComfyUI's ViT-H clip_vision file, as sparse files with no tensor data."""
    spec = official_spec(shared_dir)
    official = meta_state_dict(spec)
    vid = inspect_path(write_sparse_safetensors(tmp_path / "vidxtend.fp16.safetensors", from_official(official)))
    assert vid.layout == "vidxtend"
    assert sum(c.params for c in vid.components) == 2_548_802_075  # vidxtend_notes.md §1.3
    assert {c.label: c.params for c in vid.components} == {
        "denoising UNet": 1_480_478_804, "CAM encoder": 621_981_664, "APM resampler": 22_299_904,
        "CLIP text encoder": 340_387_840, "VAE": 83_653_863}
    assert "5.10 GB" in "\n".join(vid.lines())
    cut = {k: v for k, v in from_official(official).items() if not k.startswith("controlnet.")}
    partial = inspect_path(write_sparse_safetensors(tmp_path / "cut.safetensors", cut))
    assert partial.layout == "vidxtend" and "MISSING: CAM encoder (controlnet.*)" in partial.notes
    ours = inspect_path(write_sparse_safetensors(tmp_path / "streaming_t2v.safetensors", official, torch.float32,
                                                 metadata={"format": "streamingt2v", "source": "streaming_t2v.ckpt"}))
    assert ours.layout == "streamingt2v" and _component(ours, "OpenCLIP image encoder").params == 683_800_065
    assert any("ViT-H/14, width 1280, 32 layers, 1024-d embedding: usable" in n for n in ours.notes), ours.notes
    visual, _ = to_open_clip_visual(meta_state_dict(spec, "image_encoder.model.visual."))
    clip_h = inspect_path(write_sparse_safetensors(tmp_path / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
                                                   open_clip_to_hf(visual), torch.float32))
    assert clip_h.layout == "clip_vision" and sum(c.params for c in clip_h.components) == 632_076_800
    assert any("ViT-H/14" in n and "usable as" in n for n in clip_h.notes)


def test_cli_prints_and_writes_json(weight_files, capsys):
    assert main(["inspect", str(weight_files["vidxtend"])]) == 0
    out = capsys.readouterr().out
    assert "layout: vidxtend" in out and f"{_params(weight_files['model'].unet):,}" in out
    assert "controlnet." in out and "float32" in out
    assert main(["inspect", "--json", str(weight_files["folders"])]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layout"] == "vidxtend_folders" and data["title"] == LAYOUTS["vidxtend_folders"].title
    assert [c["where"] for c in data["components"]] == ["unet/", "controlnet/", "resampler/", "text_encoder/", "vae/"]
    assert main(["inspect", str(weight_files["dir"] / "nothing.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err


def test_detection_needs_only_names():
    names = {
        "streamingt2v": ["base_model.conv_in.weight", "unet.controlnet_cond_embedding.conv_in.weight"],
        "vidxtend": ["unet.cross_attention_merger_mid_block.temporal_transformer.norm.weight",
                     "controlnet.conv_in.weight"],
        "modelscope_unet": ["conv_in.weight", "down_blocks.0.resnets.0.conv1.weight", "transformer_in.proj_in.weight"],
        "streamingt2v_denoiser": ["conv_in.weight", "down_blocks.0.resnets.0.conv1.weight",
                                  "transformer_in.proj_in.weight", "cross_attention_merger_mid_block.x"],
        "open_clip": ["visual.conv1.weight", "visual.transformer.resblocks.0.attn.in_proj_weight", "logit_scale"],
        "clip_vision": ["vision_model.embeddings.patch_embedding.weight", "visual_projection.weight"],
        "raft": ["feature_encoder.convnormrelu.0.weight", "update_block.encoder.convc1.weight"],
        "ldm_vae": ["encoder.down.0.block.0.conv1.weight"],
    }
    for layout, keys in names.items():
        assert detect_file_layout(dict.fromkeys(keys)) == layout, layout


@pytest.mark.parametrize("name,content,says", [
    ("README.md", b"# Streaming Long Video\n\nA ComfyUI node pack.\n", "it is a text file"),
    ("clip.mp4", b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64), "it is a video"),
    ("model.safetensors", b"<!DOCTYPE html><html><body>Not found</body></html>", "it is not a safetensors file"),
    ("model.ckpt", b"version https://git-lfs.github.com/spec/v1\noid sha256:0\n", "it is not a PyTorch checkpoint"),
    ("weights.dat", bytes(range(64)), "its content is neither safetensors nor a PyTorch checkpoint"),
])
def test_inspect_on_a_file_that_is_not_weights_says_so(tmp_path, capsys, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} is not a weight file: {says}"), err
    assert "unpickl" not in err and len(err.strip().splitlines()) == 1, err


def test_inspect_on_a_models_root_lists_its_model_subfolders(tmp_path, capsys):
    from safetensors.torch import save_file

    root = tmp_path / "models"
    tensor = {"weight": torch.zeros(2, 2)}
    (root / "streamingt2v").mkdir(parents=True)
    save_file(tensor, str(root / "streamingt2v" / "vidxtend.fp16.safetensors"))
    sdvsr = root / "stream_diffvsr" / "Stream-DiffVSR"
    for part in ("unet", "controlnet"):
        (sdvsr / part).mkdir(parents=True)
        save_file(tensor, str(sdvsr / part / "diffusion_pytorch_model.safetensors"))
    (root / "clip_vision").mkdir()
    save_file(tensor, str(root / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"))
    (root / "loras").mkdir()  # holds nothing: not listed

    assert main(["inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout: models_root" in out, out
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(listed) == {"streamingt2v/", "stream_diffvsr/", "clip_vision/"}, out
    assert "vidxtend.fp16.safetensors" in listed["streamingt2v/"], out
    assert "Stream-DiffVSR/ (the Stream-DiffVSR hub folder" in listed["stream_diffvsr/"], out
    assert inspect_path(root).as_dict()["subfolders"].keys() == set(listed)
