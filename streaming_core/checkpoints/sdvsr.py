"""Load Stream-DiffVSR from the official hub folder layout, plus torchvision's RAFT-large file.

Layout (what ``Jamichsu/Stream-DiffVSR`` holds; a user copies it to ``models/stream_diffvsr/<name>/``)::

    <name>/unet/        config.json + diffusion_pytorch_model.safetensors   (UNet2DConditionModel, 7 in)
    <name>/controlnet/  config.json + diffusion_pytorch_model.safetensors   (ControlNetModel = ARTG)
    <name>/vae/         config.json + diffusion_pytorch_model.safetensors   (TemporalAutoencoderTiny)
    <name>/text_encoder/ config.json + model.safetensors                    (CLIPTextModel)
    <name>/tokenizer/   vocab.json, merges.txt, ...   (optional: open_clip's packaged BPE is the fallback)
    <name>/scheduler/   scheduler_config.json          (optional: the official values are built in)
    raft_large_C_T_SKHT_V2-ff5fadd5.pth  (torchvision's RAFT-large; next to the folders or anywhere)

Every network is built on the ``meta`` device with a config read from its tensor shapes and then
takes the file's tensors directly (no random initialisation, no second copy in memory). Weight
files go through ``files.load_state_dict``: safetensors, or pickles with ``weights_only``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch
from torch import nn

from ..errors import CheckpointError
from . import files
from .key_report import KeyReport, compare_shapes
from .layouts import RAFT_FILE_NAME
from .sdvsr_configs import controlnet_config, text_encoder_config, unet_config

log = logging.getLogger("streaming_core.sdvsr")

HUB_REPO = "Jamichsu/Stream-DiffVSR"
RAFT_URL = f"https://download.pytorch.org/models/{RAFT_FILE_NAME}"
REQUIRED_PARTS = ("unet", "controlnet", "vae", "text_encoder")
PART_WHAT = {
    "unet": "the 4-step denoising UNet",
    "controlnet": "the ARTG ControlNet",
    "vae": "the temporal tiny autoencoder (TPM decoder)",
    "text_encoder": "the CLIP text encoder (for the empty-prompt embedding)",
}


# ----------------------------------------------------------------------------------------- files


def _fetch_hint(part: str) -> str:
    return (f"download the folder '{part}/' of the Hugging Face repo {HUB_REPO} (config.json and the "
            f".safetensors file) into it")


def part_weight_files(folder: Path, part: str) -> list[Path]:
    """The weight file(s) of one hub subfolder (full precision preferred where both variants exist)."""
    return files.part_weight_files(folder, part, hint=f"it holds {PART_WHAT.get(part, part)}; {_fetch_hint(part)}")


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); fetch it again or delete it.") from exc


def part_config(folder: Path, part: str) -> Optional[dict]:
    return _read_json(folder / part / "config.json")


def load_part(folder: Path, part: str) -> dict[str, torch.Tensor]:
    return files.load_state_dicts(part_weight_files(folder, part))


def shapes_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


# ------------------------------------------------------------------------------- instantiation


def instantiate(build: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """Build on the meta device, check keys and shapes, then adopt the file's tensors as parameters."""
    with torch.device("meta"):
        model = build()
    report = compare_shapes(what, shapes_of(model.state_dict()), shapes_of(state_dict))
    if not report.ok:
        head = "; ".join(report.lines(5)[1:-1])
        raise CheckpointError(f"{what}: the weights do not fit the architecture read from them ({head}). "
                              f"The file is probably incomplete or from another model.")
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _config_error(what: str, exc: Exception) -> CheckpointError:
    return CheckpointError(f"{what}: a tensor the architecture is read from is missing ({exc}); this is not a "
                           f"Stream-DiffVSR {what} file, or it is incomplete.")


def _build_part(state_dict, read_config: Callable, build: Callable, what: str) -> nn.Module:
    """Config read from the tensor shapes, then the module built on meta and given the tensors."""
    try:
        cfg = read_config(shapes_of(state_dict))
    except (KeyError, IndexError) as exc:
        raise _config_error(what, exc) from exc
    return instantiate(lambda: build(cfg), state_dict, what)


def build_unet_from(state_dict, hub_config=None, what="unet"):
    from ..models.sdvsr.denoiser import build_unet

    dropped = [k for k in state_dict if k.startswith("class_embedding.")]
    if dropped:  # x4-upscaler noise-level embedding: the Stream-DiffVSR pipeline never passes class labels
        log.info("unet: ignoring %d class_embedding tensors (noise-level conditioning is unused)", len(dropped))
        state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
    return _build_part(state_dict, lambda shapes: unet_config(shapes, hub_config), build_unet, what)


def build_controlnet_from(state_dict, hub_config=None, what="controlnet"):
    from ..models.sdvsr.denoiser import build_controlnet

    return _build_part(state_dict, lambda shapes: controlnet_config(shapes, hub_config), build_controlnet, what)


def build_vae_from(state_dict, hub_config=None, what="vae"):
    from ..models.sdvsr.temporal_vae import TemporalAutoencoderTiny, TemporalVAEConfig

    return _build_part(state_dict, lambda shapes: TemporalVAEConfig.from_shapes(shapes, hub_config),
                       TemporalAutoencoderTiny, what)


def build_raft_from(state_dict, what="RAFT"):
    """torchvision RAFT (raft_large for the official file) with the file's weights, float32."""
    from ..models.sdvsr.raft import RaftConfig, RaftFlow, build_raft

    state_dict = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    try:
        cfg = RaftConfig.from_shapes(shapes_of(state_dict))
    except (KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(f"{what}: not a torchvision RAFT state dict (missing {exc}). Expected "
                              f"{RAFT_FILE_NAME} from {RAFT_URL}.") from exc
    return RaftFlow(instantiate(lambda: build_raft(cfg), state_dict, what), cfg)


def build_text_encoder_from(state_dict, hub_config=None, what="text_encoder"):
    """transformers ``CLIPTextModel``; accepts hub keys (``text_model.`` prefix) and bare ones."""
    from transformers import CLIPTextConfig, CLIPTextModel

    sd = {(k[len("text_model."):] if k.startswith("text_model.") else k): v for k, v in state_dict.items()}
    sd = {k: v for k, v in sd.items() if not k.endswith("position_ids") and not k.startswith("text_projection")}
    try:
        cfg = text_encoder_config(shapes_of(sd), hub_config)
    except (KeyError, IndexError) as exc:
        raise _config_error(what, exc) from exc
    config = CLIPTextConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
    model = instantiate(lambda: CLIPTextModel(config), sd, what)
    for name, buf in list(model.named_buffers()):  # non-persistent buffers are not in any file
        if buf.is_meta:
            if not name.endswith("position_ids"):
                raise CheckpointError(f"{what}: buffer {name} has no value after loading")
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
    return model


# ---------------------------------------------------------------------------------- tokenizer


def load_tokenizer(folder: Optional[Path]):
    """text -> (1, 77) ids. The folder's own CLIPTokenizer files if present, else open_clip's
    packaged BPE vocabulary (the same vocabulary; pads with id 0 like the SD2 tokenizer). Never a
    download."""
    from ..models.sdvsr.text import PROMPT_LENGTH

    if folder is not None and ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
                               or (folder / "tokenizer.json").is_file()):
        from transformers import CLIPTokenizer

        try:
            tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any reading problem of the user's files
            raise CheckpointError(f"the tokenizer files in {folder} could not be read ({exc}); "
                                  f"fetch them again or delete the folder to use the built-in vocabulary.") from exc
        return lambda text: torch.tensor([tok(text, padding="max_length", max_length=PROMPT_LENGTH,
                                              truncation=True).input_ids])
    from open_clip.tokenizer import SimpleTokenizer

    log.info("no tokenizer files found; using open_clip's packaged CLIP vocabulary")
    tok = SimpleTokenizer(context_length=PROMPT_LENGTH)
    return lambda text: tok(text).long()


# --------------------------------------------------------------------------------- top level


def check_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"Stream-DiffVSR folder not found: {folder}. Put the hub repo {HUB_REPO} there "
                              f"(subfolders {', '.join(REQUIRED_PARTS)}, tokenizer, scheduler).")
    missing = [p for p in REQUIRED_PARTS if not (folder / p).is_dir()]
    if missing:
        raise CheckpointError(f"{folder} lacks the subfolder(s) {', '.join(m + '/' for m in missing)} "
                              f"({'; '.join(PART_WHAT[m] for m in missing)}): {_fetch_hint(missing[0])}"
                              + (" (and likewise for the others)" if len(missing) > 1 else "") + ".")
    return folder


def find_raft_file(folder: Path) -> Path:
    for candidate in (folder / RAFT_FILE_NAME, folder.parent / RAFT_FILE_NAME):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"RAFT-large weights not found: put {RAFT_FILE_NAME} (from {RAFT_URL}) into {folder.parent} "
                          f"or {folder}, or pass its path explicitly.")


def empty_prompt_embedding(folder: Path, device="cpu") -> torch.Tensor:
    """CLIP("") from the folder's text encoder, computed once (the encoder is freed afterwards)."""
    from ..models.sdvsr.text import encode_prompt

    encoder = build_text_encoder_from(load_part(folder, "text_encoder"), part_config(folder, "text_encoder"))
    tokenize = load_tokenizer(folder / "tokenizer" if (folder / "tokenizer").is_dir() else None)
    return encode_prompt(encoder.to(device), tokenize, "").cpu()


def load_sdvsr(
    folder: str | Path,
    raft_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    vae_dtype: torch.dtype = torch.float32,
):
    """Load a Stream-DiffVSR folder (hub layout) and the RAFT file into an ``SDVSRModels``.

    ``dtype`` applies to UNet and ControlNet (fp32, fp16 or bf16), ``vae_dtype`` to the small
    TPM autoencoder (float32 by default: it writes the output pixels); RAFT stays float32.
    ``raft_path`` defaults to ``raft_large_C_T_SKHT_V2-ff5fadd5.pth`` in the folder or next to it.
    """
    from ..models.sdvsr.bundle import SDVSRModels, sdvsr_schedule

    folder = check_folder(folder)
    if raft_path is not None and Path(raft_path).is_dir():  # a folder holding the file under its real name
        raft_path = Path(raft_path) / RAFT_FILE_NAME
    raft_file = files.check_exists(raft_path, "RAFT weight file") if raft_path else find_raft_file(folder)
    raft = build_raft_from(files.load_state_dict(raft_file), what=f"RAFT ({raft_file.name})")
    unet = build_unet_from(load_part(folder, "unet"), part_config(folder, "unet"))
    controlnet = build_controlnet_from(load_part(folder, "controlnet"), part_config(folder, "controlnet"))
    vae = build_vae_from(load_part(folder, "vae"), part_config(folder, "vae"))
    _check_compatible(unet, controlnet, vae, folder)
    prompt_embeds = empty_prompt_embedding(folder)
    if prompt_embeds.shape[-1] != unet.config.cross_attention_dim:
        raise CheckpointError(f"{folder}: the text encoder gives {prompt_embeds.shape[-1]}-wide embeddings but the "
                              f"UNet expects {unet.config.cross_attention_dim}: text_encoder/ is from another model.")
    schedule = sdvsr_schedule(_read_json(folder / "scheduler" / "scheduler_config.json"))
    models = SDVSRModels(unet, controlnet, vae, raft, prompt_embeds, schedule, name=folder.name)
    return models.to(device, dtype, vae_dtype)


def _check_compatible(unet, controlnet, vae, folder: Path) -> None:
    latent = vae.config.latent_channels
    expect_in = latent + 3
    if unet.config.in_channels != expect_in:
        raise CheckpointError(f"{folder}/unet takes {unet.config.in_channels} input channels; Stream-DiffVSR's takes "
                              f"{expect_in} ({latent} latent + 3 low-res RGB): this is not its UNet.")
    if controlnet.config.in_channels != unet.config.in_channels:
        raise CheckpointError(f"{folder}/controlnet takes {controlnet.config.in_channels} input channels but the UNet "
                              f"{unet.config.in_channels}: the two parts are from different models.")
    if list(controlnet.config.block_out_channels) != list(unet.config.block_out_channels):
        raise CheckpointError(f"{folder}: controlnet widths {list(controlnet.config.block_out_channels)} differ from "
                              f"the UNet's {list(unet.config.block_out_channels)}: parts from different models.")


def list_model_folders(root: str | Path) -> list[str]:
    """Names of the Stream-DiffVSR folders under ``root`` (for menus)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "unet").is_dir())


# --------------------------------------------------------------------------------- check-keys


def key_report(spec: dict) -> list[KeyReport]:
    """Build each part at full size on the meta device, configured exactly as loading configures it
    (shapes + the config.json values the spec lists), and compare names and shapes."""
    from ..models.sdvsr.denoiser import build_controlnet, build_unet
    from ..models.sdvsr.temporal_vae import TemporalAutoencoderTiny, TemporalVAEConfig

    unet_hub = spec.get("unet_config")
    cn_hub = {**(unet_hub or {}), **spec.get("controlnet_extra_config", {})}
    builders = {
        "unet": lambda shapes: build_unet(unet_config(shapes, unet_hub)),
        "controlnet": lambda shapes: build_controlnet(controlnet_config(shapes, cn_hub)),
        "vae": lambda shapes: TemporalAutoencoderTiny(TemporalVAEConfig.from_shapes(shapes, spec.get("vae_config"))),
    }
    reports = []
    for part, build in builders.items():
        official = {k: tuple(v) for k, v in spec[part]["keys"].items()}
        try:
            with torch.device("meta"):
                model = build(official)
            ours = shapes_of(model.state_dict())
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            report = KeyReport(f"stream_diffvsr.{part}", len(official), missing=sorted(official))
            report.missing.insert(0, f"<cannot build: {type(exc).__name__}: {exc}>")
            reports.append(report)
            continue
        reports.append(compare_shapes(f"stream_diffvsr.{part}", official, ours))
    return reports
