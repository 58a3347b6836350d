"""Read the official StreamingT2V checkpoint (``streaming_t2v.ckpt``) and our safetensors copy of it.

Both hold the official keys (``checkpoint['state_dict']`` of the Lightning ``VideoLDM``):
``base_model.`` denoiser, ``unet.`` CAM encoder (naming trap), ``resampler.``, ``image_encoder.``,
``text_encoder.``, ``vae.``. Our safetensors format is exactly those keys and tensors, with metadata
``{"format": "streamingt2v", "layout": "official"}``; ``convert`` writes it. The VidXTend repack (same
networks, other prefixes, no image encoder) is renamed to these keys first (``vidxtend.py``), and the
image encoder can come from another file (``image_encoder.py``).

Every architecture number is read from tensor shapes, part by part, through ``load_component``, so
the tiny test checkpoints and the 25 GB official file take the same path, and
``key_report`` checks a full-size model built on the meta device by that same path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import torch

from ..errors import CheckpointError
from ..models.apm import ImageContextResampler, ResamplerConfig
from ..models.cam import CAMEncoder
from ..models.clip_image import OPEN_CLIP_TEXT_LEFTOVERS, OpenCLIPImageEncoder, VisionTowerConfig
from ..models.streamingt2v import OFFICIAL_PREFIXES, StreamingT2V, StreamingT2VConfig
from ..models.text_encoder import CLIPTextEncoder, text_config_from_state_dict
from ..models.unet3d import UNet3D, UNet3DConfig
from ..models.vae import build_vae as build_diffusers_vae, vae_config_from_state_dict
from . import vidxtend
from .components import load_component, meta_parameters, sub_state_dict
from .files import load_state_dict, save_safetensors
from .image_encoder import MISSING_HELP, check_embedding_width, load_image_encoder
from .key_report import KeyReport, compare_shapes
from .layouts import check_unet3d_kind, describe, detect_file_layout, has_role, top_level_names

FORMAT_METADATA = {"format": "streamingt2v", "layout": "official"}
ALL_COMPONENTS = tuple(OFFICIAL_PREFIXES)  # unet, cam, resampler, image_encoder, text_encoder, vae
OFFICIAL_TENSOR_COUNTS = {"base_model.": 1703, "unet.": 682, "resampler.": 4, "image_encoder.": 398,
                          "text_encoder.": 372, "vae.": 248}
_DESCRIPTIONS = {
    "unet": "denoising UNet (base_model.*)",
    "cam": "CAM encoder (unet.*)",
    "resampler": "APM resampler (resampler.*)",
    "image_encoder": "OpenCLIP image encoder (image_encoder.*)",
    "text_encoder": "CLIP text encoder (text_encoder.*)",
    "vae": "VAE (vae.*)",
}
IMAGE_ENCODER_IGNORED = tuple("model." + k for k in OPEN_CLIP_TEXT_LEFTOVERS)


# -- builders: config from the shapes of one component's tensors (prefix already removed) ----------
def build_denoiser(sd: Mapping[str, torch.Tensor]) -> UNet3D:
    config = UNet3DConfig.from_state_dict(sd)
    check_unet3d_kind(config, "streamingt2v_denoiser")
    return UNet3D(config)


def build_cam(sd: Mapping[str, torch.Tensor]) -> CAMEncoder:
    return CAMEncoder(UNet3DConfig.from_state_dict(sd), tuple(CAMEncoder.frame_channels_from_state_dict(sd)))


def build_resampler(sd: Mapping[str, torch.Tensor]) -> ImageContextResampler:
    return ImageContextResampler(ResamplerConfig.from_state_dict(sd))


def build_image_encoder(sd: Mapping[str, torch.Tensor]) -> OpenCLIPImageEncoder:
    return OpenCLIPImageEncoder(VisionTowerConfig.from_state_dict(sd, "model.visual."))


def build_text_encoder(sd: Mapping[str, torch.Tensor]):
    return CLIPTextEncoder(text_config_from_state_dict(sd, "text_model."))


def build_vae(sd: Mapping[str, torch.Tensor]):
    return build_diffusers_vae(vae_config_from_state_dict(sd))


BUILDERS = {
    "unet": build_denoiser,
    "cam": build_cam,
    "resampler": build_resampler,
    "image_encoder": build_image_encoder,
    "text_encoder": build_text_encoder,
    "vae": build_vae,
}
IGNORED = {"image_encoder": IMAGE_ENCODER_IGNORED}


def frame_encoder_channels(cam: CAMEncoder) -> tuple[int, ...]:
    enc = cam.controlnet_cond_embedding
    return (enc.conv_in.out_channels,) + tuple(block.out_channels for block in enc.blocks[1::2])


def config_of(modules: Mapping[str, torch.nn.Module]) -> StreamingT2VConfig:
    """The container config of already-built component modules."""
    cam = modules["cam"]
    return StreamingT2VConfig(
        unet=modules["unet"].config,
        cam_unet=cam.config,
        cam_frame_channels=frame_encoder_channels(cam),
        resampler=modules["resampler"].config,
        image_encoder=modules["image_encoder"].config if modules.get("image_encoder") is not None else None,
        text_encoder=modules["text_encoder"].config if modules.get("text_encoder") is not None else None,
        vae=dict(modules["vae"].config) if modules.get("vae") is not None else None,
    )


# -- clear errors for files of another layout --------------------------------------------------------------
def _layout_error(layout: str, source: str, sd: Mapping[str, torch.Tensor]) -> Optional[CheckpointError]:
    if has_role(layout, "streamingt2v"):
        return None
    if layout == "modelscope_unet":
        return CheckpointError(
            f"{source} looks like a stock ModelScope UNet (diffusers UNet3D keys without prefixes and without the "
            f"223 CAM/APM tensors), not a StreamingT2V checkpoint: use it as the first-chunk model, and give "
            f"streaming_t2v.ckpt (or its safetensors conversion, or vidxtend.fp16.safetensors) as the StreamingT2V "
            f"model.")
    if layout == "streamingt2v_denoiser":
        return CheckpointError(
            f"{source} holds only a StreamingT2V denoiser without its 'base_model.' prefix; the CAM encoder, "
            f"resampler and the other parts are missing. Use the full streaming_t2v.ckpt.")
    if has_role(layout, "streamingt2v.image_encoder"):
        return CheckpointError(
            f"{source} looks like {describe(layout)}: an image encoder, not a StreamingT2V model. Give it as "
            f"image_encoder, and streaming_t2v.ckpt or vidxtend.fp16.safetensors as the StreamingT2V model.")
    if layout != "unknown":
        return CheckpointError(
            f"{source} looks like {describe(layout)}, not a StreamingT2V model (streaming_t2v.ckpt, its "
            f"safetensors conversion, or the VidXTend repack vidxtend[.fp16].safetensors / folders).")
    return CheckpointError(
        f"{source} is not a StreamingT2V checkpoint: none of its keys start with the official prefixes "
        f"base_model./unet./resampler. or VidXTend's unet./controlnet. (found top-level names: "
        f"{top_level_names(sd.keys())}).")


def _check_prefixes(sd: Mapping[str, torch.Tensor], wanted: Sequence[str], allow_missing: Iterable[str],
                    source: str) -> list[str]:
    """Components of ``wanted`` present in ``sd``; error naming every absent one not allowed to be."""
    counts = {name: sum(1 for k in sd if k.startswith(OFFICIAL_PREFIXES[name])) for name in wanted}
    absent = [name for name in wanted if counts[name] == 0 and name not in set(allow_missing)]
    if absent == ["image_encoder"]:
        raise CheckpointError(f"{source} has no OpenCLIP image encoder (image_encoder.*). {MISSING_HELP} (Python: "
                              f"to load without it, pass allow_missing=('image_encoder',).)")
    if absent:
        parts = ", ".join(f"{_DESCRIPTIONS[n]}: 0 of the {OFFICIAL_TENSOR_COUNTS[OFFICIAL_PREFIXES[n]]} tensors of "
                          f"the official checkpoint" for n in absent)
        raise CheckpointError(
            f"{source} is missing {len(absent)} part(s) of StreamingT2V: {parts}. The file is incomplete or a "
            f"different layout; for a file without some parts, load with allow_missing=({', '.join(map(repr, absent))},) "
            f"and give those parts from another source.")
    return [name for name in wanted if counts[name]]


# -- loading ------------------------------------------------------------------------------------------
def build_streamingt2v(
    sd: Mapping[str, torch.Tensor],
    *,
    components: Sequence[str] = ALL_COMPONENTS,
    allow_missing: Iterable[str] = (),
    dtype: Optional[torch.dtype] = None,
    device: str | torch.device = "cpu",
    source: str = "checkpoint",
    image_encoder: Optional[str | os.PathLike | torch.nn.Module] = None,
) -> StreamingT2V:
    """The container from an official-layout or VidXTend state dict. ``components``: the parts to
    load (the denoiser, CAM encoder and resampler are always needed); ``allow_missing``: parts that
    may be absent and then stay None; ``image_encoder``: a file (open_clip, ComfyUI clip_vision or an
    official checkpoint) or a built ``OpenCLIPImageEncoder`` to use instead of the checkpoint's own
    (VidXTend has none)."""
    unknown = set(components) - set(ALL_COMPONENTS)
    if unknown:
        raise ValueError(f"unknown StreamingT2V components {sorted(unknown)}; known: {ALL_COMPONENTS}")
    components = tuple(dict.fromkeys(("unet", "cam", "resampler") + tuple(components)))
    layout = detect_file_layout(sd)
    error = _layout_error(layout, source, sd)
    if error is not None:
        raise error
    external = image_encoder is not None
    from_sd = tuple(n for n in components if not (external and n == "image_encoder"))
    if layout == "vidxtend":
        vidxtend.check_parts(sd.keys(), from_sd, allow_missing, source)
        sd = vidxtend.to_official(sd)
    present = _check_prefixes(sd, from_sd, set(allow_missing) - {"unet", "cam", "resampler"}, source)
    modules = {}
    for name in present:
        modules[name] = load_component(sd, OFFICIAL_PREFIXES[name], BUILDERS[name], what=_DESCRIPTIONS[name],
                                       dtype=dtype, device=device, ignore=IGNORED.get(name, ()), source=source)
    if external:
        modules["image_encoder"] = _external_image_encoder(image_encoder, modules["resampler"], dtype, device)
    return StreamingT2V.from_components(config_of(modules), **modules)


def _external_image_encoder(source, resampler, dtype, device) -> torch.nn.Module:
    embed_dim = resampler.config.embed_dim
    if isinstance(source, torch.nn.Module):
        check_embedding_width(source.config, embed_dim, "the given image encoder")
        target = dtype or next(source.parameters()).dtype
        return source.to(device=device, dtype=target)
    return load_image_encoder(source, embed_dim=embed_dim, dtype=dtype, device=device)


def load_streamingt2v(path: str | os.PathLike, *, image_encoder: Optional[str | os.PathLike] = None,
                      **kwargs) -> StreamingT2V:
    """Load ``streaming_t2v.ckpt`` (safely: weights only, memory-mapped), our safetensors copy, or the
    VidXTend repack (``vidxtend[.fp16].safetensors`` or its diffusers folders). ``image_encoder``: the
    ViT-H/14 file to use (needed for VidXTend). Keyword arguments as ``build_streamingt2v``."""
    path = Path(path)
    if path.is_dir():
        wanted = tuple(kwargs.get("components", ALL_COMPONENTS))
        sd = vidxtend.read_folder(path, wanted=("unet", "cam", "resampler") + wanted,
                                  allow_missing=kwargs.get("allow_missing", ()), dtype=kwargs.get("dtype"))
    else:
        sd = load_state_dict(path)
    return build_streamingt2v(sd, source=path.name, image_encoder=image_encoder, **kwargs)


def save_streamingt2v(model_or_sd, path: str | os.PathLike, dtype: Optional[torch.dtype] = None) -> None:
    """Our safetensors format: the official keys, atomically written, with the format metadata."""
    sd = model_or_sd.official_state_dict() if isinstance(model_or_sd, StreamingT2V) else dict(model_or_sd)
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    save_safetensors(sd, path, metadata=FORMAT_METADATA)


# -- key coverage (check-keys) ----------------------------------------------------------------------
class StreamingT2VKeyReport(KeyReport):
    """Adds the official tensors that are accepted and deliberately unused."""

    unused: list[str]

    def lines(self, limit: int = 20) -> list[str]:
        out = super().lines(limit)
        if getattr(self, "unused", None):
            out.insert(-1, f"  {len(self.unused)} mapped to unused (open_clip text-side leftovers, accepted and "
                           f"dropped): " + ", ".join(self.unused[:limit]))
        return out


def key_report(spec: dict) -> StreamingT2VKeyReport:
    """Build the full-size model on the meta device from the shapes in ``spec`` (the same config
    inference as real loading) and compare its official-named keys and shapes with the list."""
    official = {e["key"]: tuple(e["shape"]) for e in spec["entries"]}
    sd = {k: torch.empty(shape, device="meta") for k, shape in official.items()}
    modules = {}
    for name, prefix in OFFICIAL_PREFIXES.items():
        sub = sub_state_dict(sd, prefix, IGNORED.get(name, ()))
        if sub:
            with meta_parameters():
                modules[name] = BUILDERS[name](sub)
    model = StreamingT2V.from_components(config_of(modules), **modules)
    ours = {k: tuple(v.shape) for k, v in model.official_state_dict().items()}
    unused = sorted(k for k in official if k.startswith("image_encoder.")
                    and k[len("image_encoder."):] in IMAGE_ENCODER_IGNORED)
    ours.update({k: official[k] for k in unused})  # accepted by name, never built
    base = compare_shapes("StreamingT2V (streaming_t2v.ckpt state_dict)", official, ours)
    report = StreamingT2VKeyReport(base.model, base.expected, base.missing, base.unexpected, base.mismatched)
    report.unused = unused
    return report
