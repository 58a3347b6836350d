"""check-keys: the full-size StreamingT2V built on the meta device maps every official key with its
shape, and a list with one renamed key or one changed shape is rejected."""

from __future__ import annotations

import copy
import json

import pytest

from streaming_core.checkpoints.st2v import key_report
from streaming_core.cli import main


@pytest.fixture(scope="module")
def official_spec(shared_dir) -> dict:
    return json.loads((shared_dir / "specs" / "st2v_official_keys.json").read_text())


def test_check_keys_cli_passes_on_official_list(shared_dir, capsys):
    rc = main(["check-keys", str(shared_dir / "specs" / "st2v_official_keys.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "3407/3407 entries map exactly" in out
    assert "6 mapped to unused" in out and "image_encoder.model.token_embedding.weight" in out


def test_check_keys_cli_fails_on_renamed_key(official_spec, tmp_path, capsys):
    spec = copy.deepcopy(official_spec)
    victim = next(e for e in spec["entries"] if e["key"].endswith("attn2.conv_ln.weight"))
    old = victim["key"]
    victim["key"] = old.replace("conv_ln", "conv_norm")
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(spec))
    rc = main(["check-keys", str(path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert old.replace("conv_ln", "conv_norm") in out  # not mapped
    assert old in out  # ours, extra
    assert "FAILED" in out


def test_key_report_flags_changed_shape(official_spec):
    spec = copy.deepcopy(official_spec)
    victim = next(e for e in spec["entries"] if e["key"] == "base_model.cross_attention_merger_mid_block.temporal_transformer.proj_out.weight")
    victim["shape"] = [1280, 640]
    report = key_report(spec)
    assert not report.ok
    assert report.mismatched == [(victim["key"], (1280, 640), (1280, 1280))]
    assert not report.missing and not report.unexpected


def test_key_report_infers_the_real_architecture(official_spec):
    """The numbers the loader infers from the official shapes are the real model's (spec §1-3)."""
    from streaming_core.checkpoints.components import meta_parameters, sub_state_dict
    from streaming_core.checkpoints.st2v import BUILDERS, IGNORED
    import torch

    sd = {e["key"]: torch.empty(e["shape"], device="meta") for e in official_spec["entries"]}
    with meta_parameters():
        unet = BUILDERS["unet"](sub_state_dict(sd, "base_model."))
        image = BUILDERS["image_encoder"](sub_state_dict(sd, "image_encoder.", IGNORED["image_encoder"]))
        text = BUILDERS["text_encoder"](sub_state_dict(sd, "text_encoder."))
        resampler = BUILDERS["resampler"](sub_state_dict(sd, "resampler."))
    assert tuple(unet.config.block_out_channels) == (320, 640, 1280, 1280)
    assert unet.config.attention_head_dim == 64 and unet.config.apm and unet.config.cam_mergers
    assert unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.heads == 5  # 320 / 64
    assert (image.config.width, image.config.layers, image.config.patch_size, image.config.image_size) == (1280, 32, 14, 224)
    assert image.config.heads == 16  # ViT-H/14: 16 heads of 80, not 20 of 64
    assert image.config.output_dim == 1024
    assert (text.config.num_hidden_layers, text.config.hidden_size, text.config.num_attention_heads) == (23, 1024, 16)
    assert text.config.hidden_act == "gelu"
    assert (resampler.config.inner_dim, resampler.config.num_tokens) == (1280, 16)
