"""Write a tiny native video diffusion model that ComfyUI's own loaders accept (run with ComfyUI's python).

Usage: python write_tiny_video_model.py COMFYUI_ROOT OUT.safetensors

The model is a Cosmos-Predict2 DiT (ComfyUI class ``CosmosPredict2``, text-to-video variant with 16
input channels), a video transformer on Wan 2.1 latents: [B, 16, T, H/8, W/8] with 4x temporal
compression, the layout of Wan and Hunyuan Video. We use it because ComfyUI 0.3.64 detects its
width from the tensor shapes (``comfy/model_detection.py``, "Cosmos predict2") and its
cross-attention takes 1024-wide text features, which the weights-free ``LotusConditioning`` node
provides; Wan needs 4096-wide umt5 features and LTXV an attention mask, neither of which a native
node makes without a multi-GB text encoder. The state dict is made by ComfyUI's own class with the
config ComfyUI's detection derives, so the keys and shapes are exactly what UNETLoader expects.
"""

import json
import sys
import types

COMFY_ROOT, OUT = sys.argv[1], sys.argv[2]
sys.path.insert(0, COMFY_ROOT)

from comfy.cli_args import args  # noqa: E402

args.cpu = True  # importing comfy.model_management on a machine without a GPU needs --cpu

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import comfy.ldm.cosmos.predict2 as predict2  # noqa: E402
import comfy.model_detection as detection  # noqa: E402

WIDTH = 192  # model_channels: 16 heads of 12 (rope3d needs heads wider than 8); ComfyUI adds its default 10 blocks
plain_ops = types.SimpleNamespace(Linear=torch.nn.Linear, LayerNorm=torch.nn.LayerNorm, RMSNorm=torch.nn.RMSNorm)


def build(config):
    config = {k: v for k, v in config.items() if k != "image_model"}
    return predict2.MiniTrainDIT(**config, operations=plain_ops)


# Pass 1 only provides the shapes that detection reads; pass 2 is built from what it detected.
probe = build(dict(max_img_h=240, max_img_w=240, max_frames=128, in_channels=16, out_channels=16, patch_spatial=2,
                   patch_temporal=1, model_channels=WIDTH, crossattn_emb_channels=1024, pos_emb_cls="rope3d",
                   pos_emb_learnable=True, use_adaln_lora=True, adaln_lora_dim=256))
detected = detection.detect_unet_config(probe.state_dict(), "")
assert detected["image_model"] == "cosmos_predict2" and detected["model_channels"] == WIDTH, detected
model = build(detected)

generator = torch.Generator().manual_seed(0)
state = {}
for name, tensor in model.state_dict().items():
    if tensor.ndim == 1 and "norm" in name:
        value = torch.ones(tensor.shape)
    else:
        value = torch.randn(tensor.shape, generator=generator) * (0.5 / max(1, tensor.shape[-1]) ** 0.5)
    state[name] = value.to(torch.float16).contiguous()
save_file(state, OUT)
print(json.dumps({"path": OUT, "tensors": len(state), "parameters": sum(t.numel() for t in state.values()),
                  "config": {k: v for k, v in detected.items() if isinstance(v, (int, float, str, bool))}}))
