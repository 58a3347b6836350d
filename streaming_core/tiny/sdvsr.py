"""A tiny random Stream-DiffVSR: every part (UNet, ARTG ControlNet, TPM autoencoder, CLIP text
encoder, RAFT) with the real classes and key layouts but small widths, for tests, the demo and
``make-tiny``.

``write_tiny_sdvsr(models_dir)`` writes it in the official hub layout
(``models_dir/stream_diffvsr/<name>/{unet,controlnet,vae,text_encoder,tokenizer,scheduler}``) plus
a tiny RAFT under torchvision's real file name, so the real loader reads it through the same code
as real weights. The tokenizer files are derived from open_clip's packaged BPE vocabulary (the same
vocabulary the CLIP tokenizer uses). RAFT is shrunk too (same torchvision classes and key names,
smaller widths, 2 correlation levels): ~60 k parameters instead of raft_large's 5.3 M.

Weights are redrawn from a seeded generator with O(1) magnitudes, including the tensors diffusers
initialises to zero (ControlNet zero convolutions), so every path visibly affects the output.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..state_files import atomic_path, save_safetensors, save_torch
from ..models.sdvsr.bundle import SDVSRModels, sdvsr_schedule
from ..models.sdvsr.denoiser import build_controlnet, build_unet
from ..models.sdvsr.raft import RaftConfig, RaftFlow, build_raft
from ..models.sdvsr.temporal_vae import TemporalAutoencoderTiny, TemporalVAEConfig
from ..models.sdvsr.text import encode_prompt

TEXT_WIDTH = 20
TINY_UNET = {
    "in_channels": 7,
    "out_channels": 4,
    "block_out_channels": [8, 12, 12, 16],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 2,
    "attention_head_dim": 2,
    "norm_num_groups": 4,
    "cross_attention_dim": TEXT_WIDTH,
    "only_cross_attention": [True, True, True, False],
    "use_linear_projection": True,
    "num_class_embeds": None,
    "sample_size": 32,
}
TINY_CONTROLNET = {
    **{k: v for k, v in TINY_UNET.items() if k not in ("out_channels", "up_block_types")},
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [8, 16, 32],
}
TINY_VAE = TemporalVAEConfig(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8))
TINY_RAFT = RaftConfig(
    feature_layers=(8, 8, 12, 16, 24),
    context_layers=(8, 8, 12, 16, 24),
    corr_levels=2,
    corr_radius=1,
    motion_corr_layers=(16, 12),
    motion_flow_layers=(8, 8),
    motion_out_channels=16,
    hidden_size=16,
    flow_head_hidden=16,
    mask_hidden=16,
)
TINY_TEXT = {
    "vocab_size": 49408,
    "hidden_size": TEXT_WIDTH,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": TEXT_WIDTH,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}


def randomize_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Redraw every float tensor: weights N(0, 1/fan_in), biases N(0, 0.05^2), norms 1 + 0.1 N."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            leaf = name.rsplit(".", 1)[-1]
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            if isinstance(owner, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)):
                p.copy_(1 + 0.1 * noise if leaf == "weight" else 0.1 * noise)
            elif p.ndim >= 2:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif leaf == "alpha":  # TPM mixing weight: away from its 0.5 initialisation
                p.copy_(0.15 + 0.7 * torch.rand((), generator=generator))
            else:
                p.copy_(0.05 * noise)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=generator))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=generator))
    return module.eval().requires_grad_(False)


def _text_encoder(generator: torch.Generator):
    from transformers import CLIPTextConfig, CLIPTextModel

    return randomize_(CLIPTextModel(CLIPTextConfig(**TINY_TEXT)), generator)


def _tokenize(text: str) -> torch.Tensor:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=77)(text).long()


def _build_parts(seed: int):
    g = torch.Generator().manual_seed(seed)
    unet = randomize_(build_unet(TINY_UNET), g)
    controlnet = randomize_(build_controlnet(TINY_CONTROLNET), g)
    vae = randomize_(TemporalAutoencoderTiny(TINY_VAE), g)
    raft = randomize_(build_raft(TINY_RAFT), g)
    with torch.no_grad():  # keep the tiny flows small, as trained RAFT residual updates are
        raft.update_block.flow_head.conv2.weight.mul_(0.05)
        raft.update_block.flow_head.conv2.bias.mul_(0.005)
    text = _text_encoder(g)
    embeds = encode_prompt(text, _tokenize, "")
    models = SDVSRModels(unet, controlnet, vae, RaftFlow(raft, TINY_RAFT), embeds, sdvsr_schedule(), name="tiny")
    return models, text


def build_tiny_sdvsr(seed: int = 0) -> SDVSRModels:
    """All parts at tiny size, in memory, float32 on the CPU (no files involved)."""
    return _build_parts(seed)[0]


# ------------------------------------------------------------------------------------- writing


class TinyPaths(NamedTuple):
    folder: Path  # models_dir/stream_diffvsr/<name>
    raft: Path  # models_dir/stream_diffvsr/raft_large_C_T_SKHT_V2-ff5fadd5.pth


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=list) + "\n")


def write_clip_tokenizer_files(folder: Path) -> None:
    """vocab.json / merges.txt / special-token files of the CLIP BPE tokenizer, derived from
    open_clip's packaged vocabulary (SD2 convention: pad token "!")."""
    import open_clip.tokenizer as oct

    merges = gzip.open(oct.default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(oct.bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "!"}
    _write_json(folder / "special_tokens_map.json", special)
    _write_json(folder / "tokenizer_config.json", {**special, "model_max_length": 77, "do_lower_case": True,
                                                   "tokenizer_class": "CLIPTokenizer"})


def _hub_config(model, class_name: str) -> dict:
    import diffusers

    cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    return {"_class_name": class_name, "_diffusers_version": diffusers.__version__, **cfg}


def write_tiny_sdvsr(models_dir: str | Path, name: str = "tiny", seed: int = 0) -> TinyPaths:
    """Write a tiny Stream-DiffVSR in the hub layout under ``models_dir/stream_diffvsr/<name>/``.

    The folder appears complete or not at all (written next to it, then renamed into place).
    """
    root = Path(models_dir) / "stream_diffvsr"
    final = root / name
    models, text = _build_parts(seed)
    with atomic_path(final) as tmp:
        for part, model, class_name in (("unet", models.unet, "UNet2DConditionModel"),
                                        ("controlnet", models.controlnet, "ControlNetModel")):
            _write_json(tmp / part / "config.json", _hub_config(model, class_name))
            save_safetensors(model.state_dict(), tmp / part / "diffusion_pytorch_model.safetensors")
        _write_json(tmp / "vae" / "config.json", TINY_VAE.to_hub_config())
        save_safetensors(models.vae.state_dict(), tmp / "vae" / "diffusion_pytorch_model.safetensors")
        _write_json(tmp / "text_encoder" / "config.json", {**TINY_TEXT, "architectures": ["CLIPTextModel"],
                                                           "model_type": "clip_text_model"})
        save_safetensors({f"text_model.{k}": v for k, v in text.state_dict().items() if not k.endswith("position_ids")},
                         tmp / "text_encoder" / "model.safetensors")
        write_clip_tokenizer_files(tmp / "tokenizer")
        _write_json(tmp / "scheduler" / "scheduler_config.json", {
            "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
            "beta_schedule": "scaled_linear", "prediction_type": "v_prediction", "timestep_spacing": "trailing",
            "steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False, "thresholding": False,
            "rescale_betas_zero_snr": False})
        _write_json(tmp / "model_index.json", {
            "_class_name": "StreamDiffVSRPipeline", "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": [None, "TemporalAutoencoderTiny"],
            "controlnet": ["diffusers", "ControlNetModel"]})
        raft_path = root / "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
        _save_pth(models.raft.raft.state_dict(), raft_path)
    return TinyPaths(final, raft_path)


def _save_pth(state_dict: dict, path: Path) -> None:
    """torchvision's RAFT file is a plain pickled state dict (.pth)."""
    save_torch({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, path)


# ------------------------------------------------------------------------------------- full size

# The released architecture (spec §2.1-2.2: the SD x4-upscaler UNet without its class embedding, a
# ControlNet from it with a 3-level RGB conditioning encoder). Only ``bench --full`` builds it, with
# random weights; loading real weights always reads the architecture from the files instead.
RELEASED_UNET = {
    "in_channels": 7, "out_channels": 4, "block_out_channels": [256, 512, 512, 1024],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 2, "attention_head_dim": 8, "norm_num_groups": 32, "cross_attention_dim": 1024,
    "only_cross_attention": [True, True, True, False], "use_linear_projection": True, "num_class_embeds": None,
    "sample_size": 128,
}
RELEASED_CONTROLNET = {
    **{k: v for k, v in RELEASED_UNET.items() if k not in ("out_channels", "up_block_types")},
    "conditioning_channels": 3, "conditioning_embedding_out_channels": [64, 128, 256],
}


def build_random_sdvsr(full: bool, device: str | torch.device = "cpu", seed: int = 0) -> SDVSRModels:
    """Random weights for benchmarks: tiny, or the released sizes built directly on ``device``."""
    if not full:
        return build_tiny_sdvsr(seed).to(device)
    torch.manual_seed(seed)
    with torch.device(device):
        unet, controlnet = build_unet(RELEASED_UNET), build_controlnet(RELEASED_CONTROLNET)
        vae = TemporalAutoencoderTiny(TemporalVAEConfig()).eval().requires_grad_(False)
        raft_config = RaftConfig()  # raft_large
        raft = build_raft(raft_config)
        embeds = torch.randn(1, 77, RELEASED_UNET["cross_attention_dim"])
    return SDVSRModels(unet, controlnet, vae, RaftFlow(raft, raft_config), embeds, sdvsr_schedule(), name="released")
