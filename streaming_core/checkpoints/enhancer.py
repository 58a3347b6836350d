"""Find and load an enhancer from the files a user gives: MS-Vid2Vid-XL's three files, or a diffusers
UNet3D (zeroscope_v2_XL) folder or its parts.

Every file is recognised by its tensor names, not its file name (the layout table, ``layouts.py``,
says which layouts fill which part), so renamed files work and a wrong file gets an error saying what
it is and what was expected. Facts used (spec §6): MS-Vid2Vid-XL is
v-prediction on its logsnr-cosine-interp schedule at 1280x720 with guidance rescale 0.2; the
diffusers UNet3D family (ModelScope, zeroscope) is epsilon-prediction on scaled_linear
0.00085..0.012 over 1000 steps (a ``scheduler/scheduler_config.json`` next to the UNet overrides
these), zeroscope_v2_XL native 1024x576.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from ..errors import CheckpointError
from ..models.enhancer import Enhancer, NativeResolution
from ..models.msvid2vid import fit_latent_size
from ..models.text_encoder import CLIPTextEncoder, text_config_from_state_dict
from ..models.unet3d import UNet3D, UNet3DConfig
from ..models.vae import build_vae, vae_config_from_state_dict
from ..schedules.discrete import betas_for
from ..schedules.prediction import prediction_type
from ..schedules.vp_sigmas import VPSigmaTable
from .components import load_component
from .files import WEIGHT_SUFFIXES, load_state_dict, read_safetensors_header
from .layouts import MSVID2VID_FILES, check_unet3d_kind, describe, detect_file_layout, has_role, short
from .ldm_vae import LDM_PREFIX, ldm_to_diffusers
from .msvid2vid import build_unet_from_official
from .open_clip_text import open_clip_to_hf_text

DIFFUSERS_PARTS = {"unet": ("unet",), "text": ("text_encoder",), "vae": ("vae",)}
DIFFUSERS_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                   "model.fp16.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin")
MSVID2VID_RESOLUTION = NativeResolution(1280, 720, pad=True)
ZEROSCOPE_RESOLUTION = NativeResolution(1024, 576, pad=True)
UNET3D_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                       prediction_type="epsilon")

# the enhancer's parts: the layout-table role each one is picked by
PART_ROLES = {"UNet": "enhancer.unet", "text encoder": "enhancer.text_encoder", "VAE": "enhancer.vae"}


@dataclass
class _File:
    path: Path
    layout: str  # a ``layouts.LAYOUTS`` name
    sd: Optional[Mapping[str, torch.Tensor]] = None  # kept when reading the keys meant loading the file

    def state_dict(self) -> Mapping[str, torch.Tensor]:
        if self.sd is None:
            self.sd = load_state_dict(self.path)
        return self.sd


def _inspect(path: Path) -> _File:
    if path.suffix.lower() in (".safetensors", ".sft"):
        return _File(path, detect_file_layout(read_safetensors_header(path).keys()))
    sd = load_state_dict(path)  # pickles are memory-mapped: reading keys costs little
    return _File(path, detect_file_layout(sd), sd)


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)


def _expand(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], Optional[Path]]:
    """Weight files named by ``paths`` (folders: the known layouts, else their weight files) and a
    diffusers scheduler config if one is found."""
    files, scheduler = [], None
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CheckpointError(f"enhancer file not found: {path}. Check the path.")
        if path.is_file():
            files.append(path)
            continue
        if (path / "unet").is_dir():  # a diffusers pipeline folder
            for sub in ("unet", "text_encoder", "vae"):
                found = [path / sub / n for n in DIFFUSERS_NAMES if (path / sub / n).is_file()]
                if found:
                    files.append(found[0])
            if (path / "scheduler" / "scheduler_config.json").is_file():
                scheduler = path / "scheduler" / "scheduler_config.json"
            continue
        # a folder holding MS-Vid2Vid-XL's files (e.g. models/streamingt2v/, next to other models): those;
        # any other folder: all its weight files
        named = [path / n for n in MSVID2VID_FILES.values() if (path / n).is_file()]
        files += named or _weight_files(path)
    if not files:
        raise CheckpointError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {', '.join(map(str, paths))}.")
    return list(dict.fromkeys(files)), scheduler


NEEDS = (
    "an enhancer needs three parts: MS-Vid2Vid-XL's {unet} + {text} + {vae}, or a diffusers UNet3D folder "
    "(zeroscope_v2_XL: unet/, text_encoder/, vae/) or its unet file with a text encoder and a VAE".format(**MSVID2VID_FILES)
)


def _pick(found: list[_File], part: str) -> _File:
    matches = [f for f in found if has_role(f.layout, PART_ROLES[part])]
    if len(matches) > 1:
        raise CheckpointError(f"several files could be the {part}: {', '.join(str(f.path) for f in matches)}. Give one.")
    if not matches:
        given = "; ".join(f"{f.path.name}: {short(f.layout)}" for f in found)
        raise CheckpointError(f"no {part} among the given files ({given}): {NEEDS}.")
    return matches[0]


@dataclass
class EnhancerFiles:
    kind: str  # "ms_vid2vid_xl" or "diffusers_unet3d"
    unet: _File
    text: _File
    vae: _File
    scheduler_config: Optional[Path] = None


def find_enhancer_files(paths: Sequence[str | os.PathLike]) -> EnhancerFiles:
    files, scheduler = _expand(paths)
    found = [_inspect(p) for p in files]
    for f in found:
        if f.layout == "unknown":
            raise CheckpointError(f"{f.path} is not a file this pack knows (no MS-Vid2Vid-XL, UNet3D, CLIP text or VAE "
                                  f"tensor names): {NEEDS}.")
        if not any(has_role(f.layout, role) for role in PART_ROLES.values()):
            raise CheckpointError(f"{f.path} is {describe(f.layout)}, not a part of an enhancer: {NEEDS}.")
    unet = _pick(found, "UNet")
    text = _pick(found, "text encoder")
    vae = _pick(found, "VAE")
    extra = [f for f in found if f not in (unet, text, vae)]
    if extra:
        raise CheckpointError(f"unused files among the enhancer files: {', '.join(str(f.path) for f in extra)}.")
    kind = "ms_vid2vid_xl" if unet.layout == "msvid2vid_unet" else "diffusers_unet3d"
    return EnhancerFiles(kind, unet, text, vae, scheduler)


# -- component builders ---------------------------------------------------------------------------------
def _text_encoder(f: _File, dtype, device):
    sd = f.state_dict()
    if f.layout == "open_clip":
        try:
            sd = open_clip_to_hf_text(sd, skip_last_layers=1)  # MS-Vid2Vid-XL: penultimate layer + ln_final
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{f.path}: cannot read the open_clip text tower ({exc}).") from exc
    else:
        sd = {k: v for k, v in sd.items() if k.startswith("text_model.")}
        sd.pop("text_model.embeddings.position_ids", None)
    return load_component(sd, "", lambda s: CLIPTextEncoder(text_config_from_state_dict(s, "text_model.")),
                          what="text encoder", dtype=dtype, device=device, source=str(f.path))


def _vae(f: _File, dtype, device):
    sd = f.state_dict()
    try:
        if f.layout == "sd_checkpoint":
            sd = ldm_to_diffusers(sd, LDM_PREFIX)
        elif f.layout == "ldm_vae":
            sd = ldm_to_diffusers(sd, "")
    except (KeyError, ValueError) as exc:  # ValueError: no decoder.up.* levels at all
        raise CheckpointError(f"{f.path}: its autoencoder tensors do not form an SD VAE ({exc}).") from exc
    sd = {k: v for k, v in sd.items() if k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv."))}
    return load_component(sd, "", lambda s: build_vae(vae_config_from_state_dict(s)), what="VAE",
                          dtype=dtype, device=device, source=str(f.path))


def _unet3d(f: _File, dtype, device) -> UNet3D:
    sd = dict(f.state_dict())
    for key, value in list(sd.items()):  # 1x1-conv projections written by some converters
        if key.endswith(("proj_in.weight", "proj_out.weight")) and value.ndim == 4:
            sd[key] = value.reshape(value.shape[0], value.shape[1])

    def build(s):
        config = UNet3DConfig.from_state_dict(s)
        check_unet3d_kind(config, "modelscope_unet")  # StreamingT2V's denoiser is the extension model
        return UNet3D(config)

    return load_component(sd, "", build, what="UNet3D", dtype=dtype, device=device, source=str(f.path))


def _unet3d_table(scheduler: Optional[Path]) -> tuple[VPSigmaTable, str]:
    cfg = dict(UNET3D_SCHEDULE)
    raw = {}
    if scheduler is not None:
        try:
            raw = json.loads(scheduler.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{scheduler} is not valid JSON ({exc}); restore the folder's scheduler_config.json "
                                  f"or delete it to use the ModelScope schedule.") from exc
        cfg.update({k: raw[k] for k in cfg if k in raw})
    try:
        if raw.get("trained_betas"):  # an explicit beta list replaces the named schedule, as in diffusers
            betas = torch.tensor(raw["trained_betas"], dtype=torch.float32)
        else:
            betas = betas_for(int(cfg["num_train_timesteps"]), float(cfg["beta_start"]), float(cfg["beta_end"]),
                              str(cfg["beta_schedule"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{scheduler}: its noise schedule cannot be built ({exc}).") from exc
    try:
        prediction = prediction_type(cfg["prediction_type"])
    except ValueError as exc:
        raise CheckpointError(f"{scheduler}: unknown prediction_type {cfg['prediction_type']!r}") from exc
    return VPSigmaTable.from_alphas_cumprod(torch.cumprod(1 - betas, 0)), prediction


def make_msvid2vid_enhancer(unet, text_encoder, vae, source: str = "") -> Enhancer:
    """MS-Vid2Vid-XL's facts (spec §6): v-prediction on its own schedule, 1280x720 padded, guidance
    rescale 0.2, the ModelScope init scaling, caption "<prompt>, ", posterior-sampled latents."""
    downsamples = len(unet.config.block_out_channels) - 1
    return Enhancer("ms_vid2vid_xl", unet, text_encoder, vae, VPSigmaTable.ms_vid2vid(), "v", MSVID2VID_RESOLUTION,
                    size_rule=lambda h, w: fit_latent_size(h, w, downsamples), init="modelscope",
                    guidance_rescale=0.2, prompt_suffix=", ", sample_posterior=True, source=source)


def make_unet3d_enhancer(unet, text_encoder, vae, table: Optional[VPSigmaTable] = None, prediction_type: str = "epsilon",
                         source: str = "") -> Enhancer:
    """A diffusers UNet3D (zeroscope_v2_XL): 1024x576 padded, exact SDEdit init, no rescale."""
    if table is None:
        table, prediction_type = _unet3d_table(None)
    return Enhancer("diffusers_unet3d", unet, text_encoder, vae, table, prediction_type, ZEROSCOPE_RESOLUTION,
                    init="exact", guidance_rescale=0.0, sample_posterior=True, source=source)


def load_enhancer(paths: Sequence[str | os.PathLike] | str | os.PathLike, *, device="cpu",
                  dtype: Optional[torch.dtype] = None, vae_dtype: Optional[torch.dtype] = None,
                  text_dtype: Optional[torch.dtype] = None) -> Enhancer:
    """The enhancer in ``paths`` (files and/or folders). ``dtype`` None keeps the files' dtype for the
    UNet; the VAE and text encoder default to float32 on CPU and to ``dtype`` elsewhere."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = find_enhancer_files(paths)
    small = dtype if torch.device(device).type != "cpu" else torch.float32
    vae_dtype, text_dtype = vae_dtype or small, text_dtype or small
    text = _text_encoder(files.text, text_dtype, device)
    vae = _vae(files.vae, vae_dtype, device)
    if files.kind == "ms_vid2vid_xl":
        unet = build_unet_from_official(files.unet.state_dict(), dtype=dtype, device=device, source=str(files.unet.path))
        enhancer = make_msvid2vid_enhancer(unet, text, vae, source=str(files.unet.path.parent))
    else:
        unet = _unet3d(files.unet, dtype, device)
        table, prediction = _unet3d_table(files.scheduler_config)
        enhancer = make_unet3d_enhancer(unet, text, vae, table, prediction, source=str(files.unet.path.parent))
    _check_compatible(enhancer, files)
    return enhancer


def _check_compatible(enhancer: Enhancer, files: EnhancerFiles) -> None:
    width = enhancer.text_encoder.config.hidden_size
    context = enhancer.unet.config.cross_attention_dim
    if width != context:
        raise CheckpointError(f"the text encoder {files.text.path} gives {width}-wide tokens but the UNet "
                              f"{files.unet.path} attends to {context}: they belong to different models.")
    latent = enhancer.vae.config.latent_channels
    if latent != enhancer.unet.config.in_channels:
        raise CheckpointError(f"the VAE {files.vae.path} has {latent} latent channels but the UNet {files.unet.path} "
                              f"takes {enhancer.unet.config.in_channels}: they belong to different models.")
