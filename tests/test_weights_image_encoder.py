"""The APM image encoder from the three file layouts users have: open_clip, ComfyUI clip_vision (Hugging
Face CLIPVisionModelWithProjection names) and the official checkpoint. Same weights -> same embedding;
the Hugging Face mapping is checked against transformers' own model; wrong towers get clear errors."""

from __future__ import annotations

import pytest
import torch

from streaming_core.state_files import save_safetensors
from streaming_core.checkpoints.image_encoder import (build_image_encoder, load_image_encoder, open_clip_to_hf,
                                                      to_open_clip_visual)
from streaming_core.checkpoints.st2v import load_streamingt2v
from streaming_core.errors import CheckpointError
from streaming_core.models.clip_image import OpenCLIPImageEncoder, VisionTowerConfig
from weights_shared import assert_same_tensors, meta_state_dict, official_spec, weight_files  # noqa: F401


def _pixels(seed=0, n=2, size=64):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _hf_config(config: VisionTowerConfig, projection_dim=None):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=config.width, intermediate_size=int(config.width * config.mlp_ratio),
                            num_hidden_layers=config.layers, num_attention_heads=config.heads,
                            image_size=config.image_size, patch_size=config.patch_size,
                            projection_dim=projection_dim or config.output_dim, hidden_act="gelu",
                            layer_norm_eps=1e-5)


def _random_hf_model(config: VisionTowerConfig, seed: int, projection_dim=None):
    """transformers' own model, every parameter random (its init zeroes biases, which would hide a q/k/v mix-up)."""
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection(_hf_config(config, projection_dim)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if p.ndim == 1 else p.shape[-1] ** -0.5)
                    + (1.0 if p.ndim == 1 and "norm" in name and name.endswith("weight") else 0.0))
    return model


def test_three_layouts_give_the_same_embedding(weight_files):
    model = weight_files["model"]
    encoders = {name: load_image_encoder(weight_files[name], embed_dim=1024)
                for name in ("open_clip", "clip_vision", "official")}
    pixels = _pixels()
    with torch.no_grad():
        reference = model.image_encoder(pixels)
        for name, encoder in encoders.items():
            torch.testing.assert_close(encoder(pixels), reference, rtol=1e-5, atol=1e-6, msg=name)
    assert_same_tensors(encoders["open_clip"].state_dict(), model.image_encoder.state_dict())
    assert_same_tensors(encoders["official"].state_dict(), model.image_encoder.state_dict())


@pytest.mark.parametrize("width,layers", [(64, 1), (128, 2)])  # 1 and 2 attention heads
def test_clip_vision_file_from_transformers_matches_transformers(tmp_path, width, layers):
    """A file written by transformers itself, read by our mapping: the same image embedding."""
    config = VisionTowerConfig(image_size=64, patch_size=16, width=width, layers=layers,
                               heads=VisionTowerConfig.heads_for_width(width), mlp_ratio=2.0, output_dim=48)
    hf = _random_hf_model(config, seed=width)
    path = tmp_path / "clip_vision.safetensors"
    save_safetensors(hf.state_dict(), path)
    ours = load_image_encoder(path)
    assert ours.config == config
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # already-normalised pixels
    with torch.no_grad():
        torch.testing.assert_close(ours.model.visual(x), hf(pixel_values=x).image_embeds, rtol=1e-5, atol=1e-5)
    # and our writer inverts our reader exactly
    assert_same_tensors(open_clip_to_hf(ours.state_dict()), {k: v for k, v in hf.state_dict().items()})


def test_our_clip_vision_writer_loads_in_transformers(weight_files):
    from safetensors.torch import load_file
    from transformers import CLIPVisionModelWithProjection

    model = weight_files["model"]
    hf = CLIPVisionModelWithProjection(_hf_config(model.image_encoder.config)).eval()
    hf.load_state_dict(load_file(str(weight_files["clip_vision"])), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).image_embeds, model.image_encoder.model.visual(x),
                                   rtol=1e-5, atol=1e-5)


def test_full_size_vit_h_names_match_comfyuis_config(shared_dir):
    """The official 392 visual tensors <-> transformers' CLIPVisionModelWithProjection built with the
    values of ComfyUI's clip_vision_config_h.json (meta device: names and shapes only)."""
    from transformers import CLIPVisionModelWithProjection

    official = meta_state_dict(official_spec(shared_dir), "image_encoder.model.visual.")
    ours, layout = to_open_clip_visual(official)
    assert layout == "streamingt2v" and len(ours) == 392
    h = VisionTowerConfig.from_state_dict(ours, "model.visual.")
    assert (h.width, h.layers, h.heads, h.patch_size, h.output_dim) == (1280, 32, 16, 14, 1024)
    with torch.device("meta"):
        hf = CLIPVisionModelWithProjection(_hf_config(h))
    expected = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    converted = open_clip_to_hf(ours)
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    back, layout = to_open_clip_visual(converted)
    assert layout == "clip_vision"
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in ours.items()}


def test_vit_l_clip_vision_is_refused_with_the_reason(weight_files, tmp_path):
    tiny = VisionTowerConfig(image_size=64, patch_size=32, width=64, layers=1, heads=1, mlp_ratio=2.0, output_dim=768)
    path = tmp_path / "clip_vision_l.safetensors"
    save_safetensors(_random_hf_model(tiny, seed=3).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_streamingt2v(weight_files["vidxtend"], image_encoder=path)
    msg = str(err.value)
    assert "clip_vision_l.safetensors" in msg and "768-d" in msg and "1024-d" in msg
    # the real ViT-L/14 (OpenAI / SD1.5 IP-Adapter clip_vision) is named as such, before any weight is read
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        vit_l = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14,
            projection_dim=768))
    with pytest.raises(CheckpointError, match=r"is ViT-L/14 \(width 1024, 24 layers\).*768-d"):
        build_image_encoder(vit_l.state_dict(), embed_dim=1024, source="clip-vit-large-patch14.safetensors")


def test_clip_vision_folder_and_old_position_ids_buffer(weight_files, tmp_path):
    """IP-Adapter's image_encoder/ folder (config.json + model.safetensors), saved by an older
    transformers that still wrote the position_ids buffer."""
    from safetensors.torch import load_file

    sd = load_file(str(weight_files["clip_vision"]))
    sd["vision_model.embeddings.position_ids"] = torch.arange(50)[None]
    save_safetensors(sd, tmp_path / "image_encoder" / "model.safetensors")
    (tmp_path / "image_encoder" / "config.json").write_text("{}")
    encoder = load_image_encoder(tmp_path / "image_encoder", embed_dim=1024)
    assert_same_tensors(encoder.state_dict(), weight_files["model"].image_encoder.state_dict())


def test_sharded_clip_vision_folder_reads_every_shard(weight_files, tmp_path):
    import json

    from safetensors.torch import load_file

    sd = load_file(str(weight_files["clip_vision"]))
    keys = sorted(sd)
    half = len(keys) // 2
    folder = tmp_path / "image_encoder"
    weight_map = {}
    for n, part in enumerate((keys[:half], keys[half:])):
        name = f"model-0000{n + 1}-of-00002.safetensors"
        save_safetensors({k: sd[k] for k in part}, folder / name)
        weight_map.update({k: name for k in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    encoder = load_image_encoder(folder, embed_dim=1024)
    assert_same_tensors(encoder.state_dict(), weight_files["model"].image_encoder.state_dict())
    (folder / "model.safetensors.index.json").write_text("{cut off")
    with pytest.raises(CheckpointError, match="not a valid shard index"):
        load_image_encoder(folder, embed_dim=1024)


def test_clip_vision_without_projection(weight_files):
    from safetensors.torch import load_file

    sd = load_file(str(weight_files["clip_vision"]))
    del sd["vision_model.encoder.layers.0.self_attn.k_proj.bias"]
    with pytest.raises(CheckpointError, match=r"lacks vision_model\.encoder\.layers\.0\.self_attn\.k_proj\.bias"):
        build_image_encoder(sd)
    del sd["visual_projection.weight"]
    with pytest.raises(CheckpointError, match="without its image projection"):
        build_image_encoder(sd)


def test_missing_image_encoder_error_lists_the_files_that_work(weight_files):
    with pytest.raises(CheckpointError) as err:
        load_streamingt2v(weight_files["vidxtend"])
    msg = str(err.value)
    for needle in ("models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "IP-Adapter",
                   "open_clip_pytorch_model.bin", "MS-Vid2Vid-XL", "streaming_t2v.ckpt", "image_encoder",
                   "allow_missing=('image_encoder',)"):
        assert needle in msg, needle
    model = load_streamingt2v(weight_files["vidxtend"], allow_missing=("image_encoder",))
    assert model.image_encoder is None


def test_given_image_encoder_replaces_the_checkpoints_own(weight_files):
    other = OpenCLIPImageEncoder(weight_files["model"].image_encoder.config)
    with torch.no_grad():
        for p in other.parameters():
            p.normal_(0, 0.05)
    model = load_streamingt2v(weight_files["official"], image_encoder=other)
    assert model.image_encoder is other
    assert not torch.equal(model.image_encoder.model.visual.proj, weight_files["model"].image_encoder.model.visual.proj)


def test_a_file_without_an_image_tower(weight_files):
    with pytest.raises(CheckpointError) as err:
        load_streamingt2v(weight_files["vidxtend"], image_encoder=weight_files["vidxtend"])
    msg = str(err.value)
    assert "holds no CLIP image encoder" in msg and "VidXTend" in msg and "clip_vision" in msg
