"""The VidXTend repack loads as the same StreamingT2V as the official checkpoint: single file and
diffusers folders, the unet./controlnet. prefix swap, fp16 variants, and clear errors for partial files."""

from __future__ import annotations

import shutil

import pytest
import torch

from streaming_core.checkpoints.files import load_state_dict
from streaming_core.checkpoints.st2v import build_streamingt2v, load_streamingt2v
from streaming_core.checkpoints.vidxtend import from_official, to_official
from streaming_core.errors import CheckpointError
from st2v_shared import tiny_inputs
from weights_shared import assert_same_tensors, meta_state_dict, official_spec, weight_files  # noqa: F401


def test_prefix_swap_puts_each_network_where_it_belongs(weight_files):
    """VidXTend's unet.* must become the denoiser and its controlnet.* the CAM encoder."""
    model = weight_files["model"]
    raw = load_state_dict(weight_files["vidxtend"])
    loaded = load_streamingt2v(weight_files["vidxtend"], image_encoder=weight_files["official"])
    # the two networks share every stock key name, with different values: a swap would show here
    assert not torch.equal(model.unet.conv_in.weight, model.cam.trunk.conv_in.weight)
    assert torch.equal(loaded.unet.conv_in.weight, raw["unet.conv_in.weight"])
    assert torch.equal(loaded.cam.trunk.conv_in.weight, raw["controlnet.conv_in.weight"])
    for name in ("unet", "cam", "resampler", "text_encoder", "vae", "image_encoder"):
        assert_same_tensors(getattr(loaded, name).state_dict(), getattr(model, name).state_dict())
    latents, context, frames = tiny_inputs(batch=1, frames=8, cam_frames=4)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_noise(latents, 300, context, frames),
                                   model.predict_noise(latents, 300, context, frames), rtol=1e-5, atol=1e-5)


def test_official_single_file_and_folders_give_identical_modules(weight_files):
    official = load_streamingt2v(weight_files["official"]).official_state_dict()
    single = load_streamingt2v(weight_files["vidxtend"], image_encoder=weight_files["official"])
    folders = load_streamingt2v(weight_files["folders"], image_encoder=weight_files["official"])
    assert_same_tensors(single.official_state_dict(), official)
    assert_same_tensors(folders.official_state_dict(), official)
    assert {p.dtype for p in folders.parameters()} == {torch.float32}  # the full-precision files, not .fp16


def test_fp16_file_and_fp16_folder_variant(weight_files):
    half = load_streamingt2v(weight_files["vidxtend_fp16"], image_encoder=weight_files["clip_vision"],
                             components=("unet", "cam", "resampler", "image_encoder"))
    assert {p.dtype for n, p in half.named_parameters() if not n.startswith("image_encoder")} == {torch.float16}
    assert half.text_encoder is None and half.vae is None
    # asking for fp16 from the folders reads the .fp16 files: same values as the fp16 single file
    folders = load_streamingt2v(weight_files["folders"], dtype=torch.float16, image_encoder=weight_files["clip_vision"])
    assert_same_tensors(folders.unet.state_dict(), half.unet.state_dict())
    assert_same_tensors(folders.cam.state_dict(), half.cam.state_dict())


def test_vidxtend_file_without_controlnet_names_the_part(weight_files):
    sd = {k: v for k, v in load_state_dict(weight_files["vidxtend"]).items() if not k.startswith("controlnet.")}
    with pytest.raises(CheckpointError) as err:
        build_streamingt2v(sd, source="vidxtend.fp16.safetensors", image_encoder=weight_files["clip_vision"])
    msg = str(err.value)
    assert "VidXTend file without its controlnet.* part" in msg and "CAM encoder" in msg and "682" in msg
    assert "benjamin-paine/vidxtend" in msg


def test_vidxtend_file_without_text_encoder_can_be_allowed(weight_files):
    sd = {k: v for k, v in load_state_dict(weight_files["vidxtend"]).items() if not k.startswith("text_encoder.")}
    with pytest.raises(CheckpointError, match=r"text_encoder\.\* part .*allow_missing=\('text_encoder',\)"):
        build_streamingt2v(sd, image_encoder=weight_files["clip_vision"])
    model = build_streamingt2v(sd, image_encoder=weight_files["clip_vision"], allow_missing=("text_encoder",))
    assert model.text_encoder is None and model.vae is not None


def test_folder_missing_a_subfolder(weight_files, tmp_path):
    folder = tmp_path / "vidxtend"
    shutil.copytree(weight_files["folders"], folder)
    shutil.rmtree(folder / "controlnet")
    with pytest.raises(CheckpointError) as err:
        load_streamingt2v(folder, image_encoder=weight_files["clip_vision"])
    msg = str(err.value)
    assert "without its controlnet/" in msg and "CAM encoder" in msg and "Download controlnet/" in msg
    (folder / "controlnet").mkdir()  # there, but empty
    with pytest.raises(CheckpointError, match="controlnet holds no weight file.*benjamin-paine/vidxtend"):
        load_streamingt2v(folder, image_encoder=weight_files["clip_vision"])


def test_folder_without_vae_loads_when_allowed(weight_files, tmp_path):
    folder = tmp_path / "vidxtend"
    shutil.copytree(weight_files["folders"], folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(CheckpointError, match="without its vae/"):
        load_streamingt2v(folder, image_encoder=weight_files["clip_vision"])
    model = load_streamingt2v(folder, image_encoder=weight_files["clip_vision"], allow_missing=("vae",))
    assert model.vae is None and model.text_encoder is not None


def test_a_folder_that_is_not_vidxtend(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(CheckpointError, match="not a VidXTend folder"):
        load_streamingt2v(tmp_path)


def test_full_size_key_sets_match_the_notes(shared_dir):
    """The official key list renamed: 3,009 VidXTend keys, 2,548,802,075 parameters
    (vidxtend_notes.md §1.3, §2.1), and back again to the official keys minus the image encoder."""
    official = meta_state_dict(official_spec(shared_dir))
    vid = from_official(official)
    assert len(vid) == 3009
    assert sum(t.numel() for t in vid.values()) == 2_548_802_075
    assert sum(t.numel() for k, t in vid.items() if k.startswith("unet.")) == 1_480_478_804
    assert sum(t.numel() for k, t in vid.items() if k.startswith("controlnet.")) == 621_981_664
    assert to_official(vid).keys() == {k for k in official if not k.startswith("image_encoder.")}


def test_other_layouts_given_as_the_model_are_named(weight_files):
    small = torch.zeros(1)
    cases = {
        "open_clip": {"visual.conv1.weight": small, "visual.transformer.resblocks.0.attn.in_proj_weight": small},
        "clip_vision": {"vision_model.embeddings.patch_embedding.weight": small, "visual_projection.weight": small},
        "Stable Diffusion": {"first_stage_model.encoder.conv_in.weight": small},
        "RAFT": {"feature_encoder.convnormrelu.0.weight": small, "update_block.encoder.convc1.weight": small},
        "MS-Vid2Vid-XL": {"input_blocks.0.0.weight": small, "input_blocks.1.0.temopral_conv.conv1.0.weight": small},
    }
    for name, sd in cases.items():
        with pytest.raises(CheckpointError, match=name):
            build_streamingt2v(sd, source="x.safetensors")
