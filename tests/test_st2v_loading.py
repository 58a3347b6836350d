"""Loading StreamingT2V checkpoints: the official Lightning .ckpt layout and our safetensors give the
same modules, convert is safe, and every broken input gets an error that names the problem."""

from __future__ import annotations

import pytest
import torch

from streaming_core.checkpoints.files import load_state_dict
from streaming_core.checkpoints.st2v import build_streamingt2v, load_streamingt2v, save_streamingt2v
from streaming_core.cli import main
from streaming_core.errors import CheckpointError, InputError
from streaming_core.tiny.st2v import tiny_official_state_dict, write_tiny_checkpoint, write_tiny_safetensors
from st2v_shared import tiny_inputs, tiny_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("st2v_ckpt")
    model = tiny_model()
    return {"model": model, "ckpt": write_tiny_checkpoint(model, d / "streaming_t2v.ckpt"),
            "safetensors": write_tiny_safetensors(model, d / "streaming_t2v.safetensors"), "dir": d}


def _assert_same_weights(a, b):
    sa, sb = a.official_state_dict(), b.official_state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_ckpt_and_safetensors_load_identical_modules(files):
    from_ckpt = load_streamingt2v(files["ckpt"])
    from_st = load_streamingt2v(files["safetensors"])
    _assert_same_weights(from_ckpt, from_st)
    _assert_same_weights(from_ckpt, files["model"])
    for name in ("unet", "cam", "resampler", "image_encoder", "text_encoder", "vae"):
        assert getattr(from_ckpt, name) is not None
    assert not any(p.requires_grad for p in from_ckpt.parameters()) and not from_ckpt.training
    # and they compute what the model that wrote them computes (up to float summation order: the
    # memory-mapped tensors can take other CPU kernels than freshly allocated ones)
    latents, context, frames = tiny_inputs(batch=1, frames=8, cam_frames=4)
    with torch.no_grad():
        ref = files["model"].predict_noise(latents, 400, context, frames)
        torch.testing.assert_close(from_ckpt.predict_noise(latents, 400, context, frames), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(from_st.predict_noise(latents, 400, context, frames), ref, rtol=1e-5, atol=1e-5)


def test_requested_dtype_and_kept_dtype(files, tmp_path):
    half = load_streamingt2v(files["ckpt"], dtype=torch.bfloat16, components=("unet", "cam", "resampler"))
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.image_encoder is None and half.text_encoder is None and half.vae is None
    path = tmp_path / "fp16.safetensors"
    save_streamingt2v(files["model"], path, dtype=torch.float16)
    kept = load_streamingt2v(path)
    assert {p.dtype for p in kept.parameters()} == {torch.float16}


def test_convert_cli_roundtrip_and_refusals(files, tmp_path, capsys):
    out = tmp_path / "converted.safetensors"
    assert main(["convert", str(files["ckpt"]), str(out)]) == 0
    converted = load_state_dict(out)
    original = tiny_official_state_dict(files["model"])
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        assert f.metadata()["format"] == "streamingt2v"
    before = files["ckpt"].read_bytes()[:4096]
    capsys.readouterr()
    assert main(["convert", str(files["safetensors"]), str(files["safetensors"])]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["convert", str(files["ckpt"]), str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert files["ckpt"].read_bytes()[:4096] == before
    assert not list(tmp_path.glob("*.partial"))


def _sd(files):
    return dict(load_state_dict(files["safetensors"]))


def test_stock_modelscope_unet_is_named(files):
    sd = _sd(files)
    stock = {k[len("base_model."):]: v for k, v in sd.items() if k.startswith("base_model.")
             and "cross_attention_merger" not in k and not any(s in k for s in ("attn2.conv", "attn2.alpha"))}
    with pytest.raises(CheckpointError) as err:
        build_streamingt2v(stock, source="unet.safetensors")
    msg = str(err.value)
    assert "stock ModelScope UNet" in msg and "first-chunk model" in msg and "unet.safetensors" in msg


def test_missing_prefix_names_the_part(files):
    sd = {k: v for k, v in _sd(files).items() if not k.startswith("unet.")}
    with pytest.raises(CheckpointError) as err:
        build_streamingt2v(sd)
    msg = str(err.value)
    assert "CAM encoder (unet.*)" in msg and "682" in msg


def test_missing_optional_part_needs_permission(files):
    sd = {k: v for k, v in _sd(files).items() if not k.startswith("image_encoder.")}
    with pytest.raises(CheckpointError, match=r"OpenCLIP image encoder \(image_encoder\.\*\)"):
        build_streamingt2v(sd)
    model = build_streamingt2v(sd, allow_missing=("image_encoder",))
    assert model.image_encoder is None and model.text_encoder is not None
    with pytest.raises(InputError, match="no image_encoder"):
        model.anchor_tokens(torch.zeros(1, 3, 64, 64))


def test_missing_single_key_is_listed(files):
    sd = _sd(files)
    del sd["base_model.up_blocks.2.attentions.1.transformer_blocks.0.attn2.alpha"]
    with pytest.raises(CheckpointError) as err:
        build_streamingt2v(sd)
    msg = str(err.value)
    assert "1 of its" in msg and "base_model.up_blocks.2.attentions.1.transformer_blocks.0.attn2.alpha" in msg


def test_shape_mismatch_names_key_and_shapes(files):
    sd = _sd(files)
    sd["base_model.conv_out.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as err:
        build_streamingt2v(sd)
    msg = str(err.value)
    assert "base_model.conv_out.bias: expected [4], found [5]" in msg


def test_vidxtend_layout_is_recognised(files):
    sd = _sd(files)
    swapped = {}
    for k, v in sd.items():
        if k.startswith("unet."):
            swapped["controlnet." + k[5:]] = v
        elif k.startswith("base_model."):
            swapped["unet." + k[11:]] = v
        else:
            swapped[k] = v
    # read with the prefixes swapped back (test_weights_vidxtend.py covers the layout in depth)
    _assert_same_weights(build_streamingt2v(swapped), files["model"])


@pytest.mark.parametrize("suffix", ["ckpt", "safetensors"])
def test_truncated_file(files, tmp_path, suffix):
    data = files[suffix].read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_streamingt2v(cut)


def test_pickle_with_code_is_refused(tmp_path):
    import os

    class Evil:  # unpickling would call os.getcwd (harmless); a safe loader never calls anything
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"resampler.x": torch.zeros(1)}, "hook": Evil()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_streamingt2v(path)
