"""Which weight file is this? Every layout this pack reads, told apart by key names (and a few shapes).

Why one table: the loaders, their error messages ("this looks like a stock ModelScope UNet, give it
as ...") and ``inspect`` must agree on what a file is. Detection only needs the key names, so it runs
on a safetensors header or a memory-mapped pickle without reading a single tensor.

A layout also lists its components as key prefixes, for ``inspect``'s per-part counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional


@dataclass(frozen=True)
class Layout:
    name: str
    title: str  # what the file is, for people
    use: str  # what this pack does with it
    components: tuple[tuple[str, str], ...] = ()  # (label, key prefix); "" = the whole file


_ST2V_PARTS = (("denoising UNet", "base_model."), ("CAM encoder", "unet."), ("APM resampler", "resampler."),
               ("OpenCLIP image encoder", "image_encoder."), ("CLIP text encoder", "text_encoder."), ("VAE", "vae."))
_VIDXTEND_PARTS = (("denoising UNet", "unet."), ("CAM encoder", "controlnet."), ("APM resampler", "resampler."),
                   ("CLIP text encoder", "text_encoder."), ("VAE", "vae."))

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("streamingt2v", "the official StreamingT2V checkpoint (streaming_t2v.ckpt layout: base_model./unet./...)",
           "the StreamingT2V model", _ST2V_PARTS),
    Layout("vidxtend", "the VidXTend repack of StreamingT2V as one file (vidxtend[.fp16].safetensors: "
           "unet. = denoiser, controlnet. = CAM encoder; no image encoder)",
           "the StreamingT2V model, with an image encoder from another file", _VIDXTEND_PARTS),
    Layout("vidxtend_folders", "the VidXTend repack of StreamingT2V as diffusers folders "
           "(unet/ controlnet/ resampler/ text_encoder/ vae/; no image encoder)",
           "the StreamingT2V model, with an image encoder from another file", _VIDXTEND_PARTS),
    Layout("open_clip", "open_clip CLIP weights (e.g. open_clip_pytorch_model.bin of ViT-H-14 laion2b_s32b_b79k)",
           "its visual tower is the APM image encoder; its text tower is MS-Vid2Vid-XL's text encoder",
           (("image tower", "visual."), ("text tower and CLIP head", ""))),
    Layout("clip_vision", "a Hugging Face CLIP vision model (ComfyUI clip_vision layout: vision_model.* + "
           "visual_projection.weight)", "the APM image encoder when it is ViT-H/14",
           (("vision tower", "vision_model."), ("image projection", "visual_projection."),
            ("text tower and CLIP head", ""))),
    Layout("clip_text", "a Hugging Face CLIPTextModel (text_model.*)", "a text encoder", (("text encoder", ""),)),
    Layout("modelscope_unet", "a stock ModelScope text-to-video UNet (diffusers UNet3D, no CAM/APM tensors)",
           "the first-chunk model", (("UNet3D", ""),)),
    Layout("streamingt2v_denoiser", "a StreamingT2V denoiser alone (UNet3D with CAM mergers and APM mixers, "
           "no prefix)", "nothing on its own: the full checkpoint is needed", (("UNet3D with CAM/APM", ""),)),
    Layout("msvid2vid_unet", "the MS-Vid2Vid-XL enhancer UNet (non_ema_0035000.pth layout: input_blocks.*)",
           "the enhancer's UNet", (("Vid2VidSDUNet", ""),)),
    Layout("sd_checkpoint", "a Stable Diffusion LDM checkpoint (first_stage_model.* ...), e.g. "
           "v2-1_512-ema-pruned.ckpt", "its VAE is MS-Vid2Vid-XL's autoencoder",
           (("VAE", "first_stage_model."), ("SD UNet", "model.diffusion_model."), ("text encoder", "cond_stage_model."),
            ("other", ""))),
    Layout("ldm_vae", "an autoencoder in the LDM layout (encoder.down.*)", "an enhancer VAE", (("VAE", ""),)),
    Layout("diffusers_vae", "a diffusers AutoencoderKL", "a VAE", (("VAE", ""),)),
    Layout("raft", "torchvision RAFT optical flow (raft_large_C_T_SKHT_V2-ff5fadd5.pth)", "Stream-DiffVSR's flow",
           (("feature encoder", "feature_encoder."), ("context encoder", "context_encoder."),
            ("update block", "update_block."), ("mask predictor", "mask_predictor."))),
    Layout("sdvsr_folder", "the Stream-DiffVSR hub folder (unet/ controlnet/ vae/ text_encoder/)",
           "the x4 video upscaler", (("UNet", "unet/"), ("ARTG ControlNet", "controlnet/"), ("temporal VAE", "vae/"),
                                     ("text encoder", "text_encoder/"))),
    Layout("modelscope_folder", "a diffusers text-to-video pipeline folder (text-to-video-ms-1.7b / zeroscope)",
           "the first-chunk model (its unet/)", (("UNet3D", "unet/"), ("text encoder", "text_encoder/"),
                                                 ("VAE", "vae/"))),
    Layout("msvid2vid_folder", "a folder with the MS-Vid2Vid-XL files (damo/Video-to-Video; each file below)",
           "the enhancer", ()),
    Layout("folder", "a folder of separate weight files (each one below)", "see each file", ()),
    Layout("models_root", "a models folder (ComfyUI's models/ or the CLI's --models-dir) with model subfolders",
           "inspect a subfolder or file below for its details", ()),
    Layout("unknown", "not a layout this pack knows", "nothing", (("tensors", ""),)),
)}


def _has_prefix(keys: Iterable[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def find_prefix(keys: Iterable[str], suffix: str, also: str = "") -> Optional[str]:
    """The shortest P with P+suffix a key (and P+also too, if given): where a tower sits in a file."""
    keys = set(keys)
    found = [k[: -len(suffix)] for k in keys if k.endswith(suffix) and (not also or k[: -len(suffix)] + also in keys)]
    return min(found, key=len) if found else None


OPEN_CLIP_VISUAL_MARKS = ("conv1.weight", "transformer.resblocks.0.attn.in_proj_weight")
HF_VISION_MARK = "vision_model.embeddings.patch_embedding.weight"


def open_clip_visual_prefix(keys: Iterable[str]) -> Optional[str]:
    return find_prefix(keys, *OPEN_CLIP_VISUAL_MARKS)


def hf_vision_prefix(keys: Iterable[str]) -> Optional[str]:
    return find_prefix(keys, HF_VISION_MARK)


def is_official_streamingt2v(keys: Iterable[str]) -> bool:
    return _has_prefix(keys, "base_model.") or _has_prefix(keys, "unet.controlnet_cond_embedding.") \
        or _has_prefix(keys, "image_encoder.model.")


def is_vidxtend(keys: Iterable[str]) -> bool:
    """VidXTend marks: the denoiser's CAM mergers / APM mixers under ``unet.``, or ``controlnet.``."""
    keys = list(keys)
    return (_has_prefix(keys, "unet.cross_attention_merger_") or _has_prefix(keys, "controlnet.")
            or any(k.startswith("unet.") and ".attn2.alpha" in k for k in keys))


def detect_file_layout(sd: Mapping[str, object]) -> str:
    """The ``LAYOUTS`` name of a single file's tensors (values are unused: keys decide)."""
    keys = set(sd.keys())
    has = lambda p: _has_prefix(keys, p)  # noqa: E731
    if is_vidxtend(keys):  # first: its marks never occur officially, while image_encoder.* might be added to it
        return "vidxtend"
    if is_official_streamingt2v(keys):
        return "streamingt2v"
    if "conv_in.weight" in keys and "down_blocks.0.resnets.0.conv1.weight" in keys and has("transformer_in."):
        return "streamingt2v_denoiser" if has("cross_attention_merger_") else "modelscope_unet"
    if "input_blocks.0.0.weight" in keys and has("input_blocks.1.0.temopral_conv."):
        return "msvid2vid_unet"
    if hf_vision_prefix(keys) is not None:
        return "clip_vision"
    if open_clip_visual_prefix(keys) is not None or (
            "token_embedding.weight" in keys and "transformer.resblocks.0.attn.in_proj_weight" in keys):
        return "open_clip"
    if "text_model.embeddings.token_embedding.weight" in keys:
        return "clip_text"
    if has("first_stage_model."):
        return "sd_checkpoint"
    if "encoder.down.0.block.0.conv1.weight" in keys:
        return "ldm_vae"
    if "encoder.conv_in.weight" in keys and "decoder.conv_in.weight" in keys:
        return "diffusers_vae"
    if has("feature_encoder.") and has("update_block."):
        return "raft"
    if has("resampler.context_embedding."):
        return "streamingt2v"  # only a part both layouts name alike: a partial file, the loader says what is missing
    return "unknown"


def describe(layout: str) -> str:
    return LAYOUTS.get(layout, LAYOUTS["unknown"]).title


def top_level_names(keys: Iterable[str], limit: int = 8) -> str:
    names = sorted({k.split(".", 1)[0] for k in keys})
    return ", ".join(names[:limit]) + (f" (and {len(names) - limit} more)" if len(names) > limit else "")
