"""Loaders: a picked file or folder -> a model ComfyUI manages (ModelPatcher), built on the offload device.

Weights are read from the pack's model folders only (``models/streamingt2v/``,
``models/stream_diffvsr/``, plus ``clip_vision/`` for the APM image encoder); nothing is ever
downloaded. The dtype widget overrides ComfyUI's choice for the main network.

The core loaders are imported inside ``load`` so that importing the pack (ComfyUI start-up) stays
light: the model code behind them may import diffusers/transformers.
"""

from __future__ import annotations

import torch

from ..streaming_core.checkpoints.enhancer import load_enhancer
from ..streaming_core.checkpoints.modelscope import load_modelscope_unet
from ..streaming_core.checkpoints.sdvsr import load_sdvsr
from ..streaming_core.checkpoints.st2v import load_streamingt2v
from . import choices, host

LOADERS = "StreamingT2V/loaders"
DTYPE_TOOLTIP = ("Precision of the network: auto follows ComfyUI (fp16/bf16 on a GPU, fp32 on a CPU); fp32 is the "
                 "official setting; fp16/bf16 halve the memory.")


WEIGHT_DTYPE_TOOLTIP = ("Storage of the diffusion network's weights, as ComfyUI's UNETLoader: default keeps the "
                        "dtype above; fp8_e4m3fn / fp8_e5m2 halve the fp16 weight memory again (computing stays in "
                        "the dtype above; small quality cost).")


def _dtype_input():
    return (list(host.DTYPE_CHOICES), {"default": "auto", "tooltip": DTYPE_TOOLTIP})


def _weight_dtype_input():
    return (list(host.WEIGHT_DTYPE_CHOICES), {"default": "default", "tooltip": WEIGHT_DTYPE_TOOLTIP})


class ST2VLoader:
    DESCRIPTION = (
        "Loads StreamingT2V: the CAM/APM extension model with its text encoder, OpenCLIP image encoder and VAE, "
        "from streaming_t2v.ckpt (the official checkpoint), its safetensors conversion, or the VidXTend repack. "
        "Files come from models/streamingt2v/. VidXTend has no image encoder: pick one under image_encoder "
        "(open_clip_pytorch_model.bin of ViT-H-14, or a ViT-H clip_vision file).")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = ("ST2V_MODEL",)
    RETURN_NAMES = ("st2v_model",)
    OUTPUT_TOOLTIPS = ("StreamingT2V, for the Initial Chunk, Anchor APM Encoder, CAM Extender and Chunk Loop nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (choices.st2v_models(), {
                    "tooltip": "streaming_t2v.ckpt (or its .safetensors conversion, or vidxtend.fp16.safetensors / "
                               "the VidXTend folders) in models/streamingt2v/."}),
                "dtype": _dtype_input(),
            },
            "optional": {
                "image_encoder": (choices.image_encoders(), {
                    "default": choices.NONE,
                    "tooltip": "none: the checkpoint's own image encoder (streaming_t2v.ckpt has one). For VidXTend, "
                               "the OpenCLIP ViT-H/14 weights: open_clip_pytorch_model.bin (also shipped with "
                               "MS-Vid2Vid-XL) or a clip_vision ViT-H file."}),
                "weight_dtype": _weight_dtype_input(),
            },
        }

    def load(self, model, dtype, image_encoder=choices.NONE, weight_dtype="default"):
        core = load_streamingt2v(
            choices.st2v_model_path(model), image_encoder=choices.image_encoder_path(image_encoder),
            dtype=host.pick_dtype(dtype, "diffusion"), device=host.offload_device("diffusion"))
        return (host.wrap_model(core, "diffusion", weight_dtype=weight_dtype, fp8_parts=[core.unet, core.cam]),)


class ST2VModelScopeLoader:
    DESCRIPTION = (
        "Loads the stock ModelScope text-to-video UNet that makes the first 16-frame chunk (the paper's Video-LDM): "
        "the text-to-video-ms-1.7b folder (or zeroscope_v2_576w) from models/streamingt2v/, or just its "
        "unet/diffusion_pytorch_model.safetensors. Text encoder and VAE come from the StreamingT2V model.")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = ("ST2V_BASE",)
    RETURN_NAMES = ("base_model",)
    OUTPUT_TOOLTIPS = ("The first-chunk UNet, for the Initial Chunk node.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (choices.base_models(), {
                "tooltip": "A diffusers folder (text-to-video-ms-1.7b, zeroscope_v2_576w) or a UNet3D weight file "
                           "in models/streamingt2v/."}),
            "dtype": _dtype_input(),
        }, "optional": {"weight_dtype": _weight_dtype_input()}}

    def load(self, model, dtype, weight_dtype="default"):
        unet = load_modelscope_unet(choices.base_model_path(model), dtype=host.pick_dtype(dtype, "diffusion"),
                                    device=host.offload_device("diffusion"))
        return (host.wrap_model(unet, "diffusion", weight_dtype=weight_dtype),)


class ST2VEnhancerLoader:
    DESCRIPTION = (
        "Loads the high-resolution enhancer for the Randomized Blend Refiner: MS-Vid2Vid-XL (pick "
        "non_ema_0035000.pth; open_clip_pytorch_model.bin and v2-1_512-ema-pruned.ckpt must sit beside it, as in "
        "the official download) or a diffusers UNet3D folder such as zeroscope_v2_XL (unet/, text_encoder/, vae/). "
        "Files come from models/streamingt2v/.")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = ("ST2V_ENHANCER",)
    RETURN_NAMES = ("enhancer",)
    OUTPUT_TOOLTIPS = ("The enhancer, for the Randomized Blend Refiner.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (choices.enhancers(), {
                "tooltip": "non_ema_0035000.pth (MS-Vid2Vid-XL, with its two companion files beside it) or a "
                           "diffusers UNet3D folder (zeroscope_v2_XL)."}),
            "dtype": _dtype_input(),
        }, "optional": {"weight_dtype": _weight_dtype_input()}}

    def load(self, model, dtype, weight_dtype="default"):
        enhancer = load_enhancer(choices.enhancer_path(model), device=host.offload_device("diffusion"),
                                 dtype=host.pick_dtype(dtype, "diffusion"), vae_dtype=host.pick_dtype("auto", "vae"),
                                 text_dtype=host.pick_dtype("auto", "text_encoder"))
        parts = {"unet": enhancer.unet, "text_encoder": enhancer.text_encoder, "vae": enhancer.vae}
        return (host.wrap_bundle(enhancer, parts, weight_dtype=weight_dtype, fp8_parts=["unet"]),)


class SDVSRLoader:
    DESCRIPTION = (
        "Loads Stream-DiffVSR (causal 4x video super-resolution): a folder in the hub layout of Jamichsu/Stream-DiffVSR "
        "(unet/, controlnet/, vae/, text_encoder/, tokenizer/, scheduler/) under models/stream_diffvsr/, and the "
        "RAFT-large optical-flow file raft_large_C_T_SKHT_V2-ff5fadd5.pth (in that folder or beside it).")
    CATEGORY = LOADERS
    FUNCTION = "load"
    RETURN_TYPES = ("SDVSR_MODEL",)
    RETURN_NAMES = ("sdvsr_model",)
    OUTPUT_TOOLTIPS = ("Stream-DiffVSR, for the Stream-DiffVSR Upscale node.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (choices.sdvsr_models(), {
                "tooltip": "A Stream-DiffVSR folder (hub layout) in models/stream_diffvsr/."}),
            "raft": (choices.raft_files(), {
                "default": choices.AUTO,
                "tooltip": "RAFT-large weights. auto: raft_large_C_T_SKHT_V2-ff5fadd5.pth inside the model folder or "
                           "beside it; or pick a file of models/stream_diffvsr/."}),
            "dtype": _dtype_input(),
        }, "optional": {"weight_dtype": _weight_dtype_input()}}

    def load(self, model, raft, dtype, weight_dtype="default"):
        models = load_sdvsr(choices.sdvsr_model_path(model), choices.raft_path(raft),
                            device=host.offload_device("diffusion"), dtype=host.pick_dtype(dtype, "diffusion"),
                            vae_dtype=torch.float32)
        parts = {"unet": models.unet, "controlnet": models.controlnet, "vae": models.vae, "raft": models.raft}
        return (host.wrap_bundle(models, parts, weight_dtype=weight_dtype, fp8_parts=["unet", "controlnet"]),)


NODE_CLASS_MAPPINGS = {
    "ST2VLoader": ST2VLoader,
    "ST2VModelScopeLoader": ST2VModelScopeLoader,
    "ST2VEnhancerLoader": ST2VEnhancerLoader,
    "SDVSRLoader": SDVSRLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ST2VLoader": "ST2V StreamingT2V Loader",
    "ST2VModelScopeLoader": "ST2V ModelScope T2V Loader (first chunk)",
    "ST2VEnhancerLoader": "ST2V Enhancer Loader (MS-Vid2Vid-XL / zeroscope XL)",
    "SDVSRLoader": "ST2V Stream-DiffVSR Loader",
}
