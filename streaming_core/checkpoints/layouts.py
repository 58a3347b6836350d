"""Which weight file or folder is this, and what is it for? The one table every reader of the question asks.

Why one table: the loaders, their error messages ("this looks like a stock ModelScope UNet, give it
as ..."), ``inspect``, the CLI's weight discovery and the node menus must agree on what a file is and
where it is looked for. Each row names a layout, the roles it fills, its detector, the module that
reads it, its text for people and the file names discovery looks for. A new layout is one row here,
its detector (a function below) and its rename/loader module (named in ``loader``); a repack of a
family already read (as VidXTend is of StreamingT2V) adds the call of its rename in the family loader.

File detectors see only the set of tensor names (a safetensors header or a memory-mapped pickle:
no tensor is read). Folder detectors see a ``FolderView`` (subfolders, file names, the key names of a
part's weight file). Rows are tried in table order; a row's ``fallback`` detector only after every
row's main one failed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from ..errors import CheckpointError
from .files import part_weight_files, read_tensor_infos

# file names the table's rows and their loaders share
MSVID2VID_UNET_FILE = "non_ema_0035000.pth"
MSVID2VID_FILES = {"unet": MSVID2VID_UNET_FILE, "text": "open_clip_pytorch_model.bin",
                   "vae": "v2-1_512-ema-pruned.ckpt"}
RAFT_FILE_NAME = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
CLIP_VISION_H14_FILE = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"

# roles: the input a layout can be given as ("slot" or "slot.part" for one file of a multi-file model)
ROLES = {
    "streamingt2v": "the StreamingT2V model",
    "streamingt2v.image_encoder": "the APM image encoder (for a StreamingT2V file without one)",
    "first_chunk": "the first-chunk model",
    "enhancer": "the enhancer",
    "enhancer.unet": "the enhancer's UNet",
    "enhancer.text_encoder": "the enhancer's text encoder",
    "enhancer.vae": "the enhancer's VAE",
    "upscaler": "the x4 video upscaler",
    "upscaler.flow": "the upscaler's optical flow",
}


# -- detectors over tensor names ----------------------------------------------------------------------
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


def is_vidxtend(keys: Iterable[str]) -> bool:
    """VidXTend marks: the denoiser's CAM mergers / APM mixers under ``unet.``, or ``controlnet.``."""
    keys = list(keys)
    return (_has_prefix(keys, "unet.cross_attention_merger_") or _has_prefix(keys, "controlnet.")
            or any(k.startswith("unet.") and ".attn2.alpha" in k for k in keys))


def is_official_streamingt2v(keys: Iterable[str]) -> bool:
    """Official prefixes, and no VidXTend mark (those never occur officially, while image_encoder.* might
    be added to a VidXTend file)."""
    keys = list(keys)
    return ((_has_prefix(keys, "base_model.") or _has_prefix(keys, "unet.controlnet_cond_embedding.")
             or _has_prefix(keys, "image_encoder.model.")) and not is_vidxtend(keys))


def _is_unet3d(keys: set[str]) -> bool:
    return ("conv_in.weight" in keys and "down_blocks.0.resnets.0.conv1.weight" in keys
            and _has_prefix(keys, "transformer_in."))


def _is_st2v_denoiser(keys: set[str]) -> bool:
    return _is_unet3d(keys) and _has_prefix(keys, "cross_attention_merger_")


def _is_stock_unet3d(keys: set[str]) -> bool:
    return _is_unet3d(keys) and not _has_prefix(keys, "cross_attention_merger_")


def _is_msvid2vid_unet(keys: set[str]) -> bool:
    return "input_blocks.0.0.weight" in keys and _has_prefix(keys, "input_blocks.1.0.temopral_conv.")


def _is_clip_vision(keys: set[str]) -> bool:
    return hf_vision_prefix(keys) is not None


def _is_open_clip(keys: set[str]) -> bool:
    return open_clip_visual_prefix(keys) is not None or (
        "token_embedding.weight" in keys and "transformer.resblocks.0.attn.in_proj_weight" in keys)


def _is_clip_text(keys: set[str]) -> bool:
    return "text_model.embeddings.token_embedding.weight" in keys


def _is_sd_checkpoint(keys: set[str]) -> bool:
    return _has_prefix(keys, "first_stage_model.")


def _is_ldm_vae(keys: set[str]) -> bool:
    return "encoder.down.0.block.0.conv1.weight" in keys


def _is_diffusers_vae(keys: set[str]) -> bool:
    return "encoder.conv_in.weight" in keys and "decoder.conv_in.weight" in keys


def _is_raft(keys: set[str]) -> bool:
    return _has_prefix(keys, "feature_encoder.") and _has_prefix(keys, "update_block.")


def _is_st2v_part(keys: set[str]) -> bool:
    """Only a part both StreamingT2V layouts name alike: a partial file, the loader says what is missing."""
    return _has_prefix(keys, "resampler.context_embedding.")


# -- detectors over folders ---------------------------------------------------------------------------
class FolderView:
    """What folder detectors may look at: subfolders, files, and the tensor names of a part's weight
    file (header only, read once per view)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder)
        self._keys: dict[str, object] = {}

    def has_dir(self, name: str) -> bool:
        return (self.path / name).is_dir()

    def has_file(self, name: str) -> bool:
        return (self.path / name).is_file()

    def part_keys(self, part: str) -> Optional[frozenset[str]]:
        """The tensor names of ``part/``'s weight file; None when it has none. A refused or broken file
        raises (it says so, rather than "no weights")."""
        if part not in self._keys:
            try:
                files = part_weight_files(self.path, part, hint="")
            except CheckpointError:
                self._keys[part] = None
            else:
                try:
                    self._keys[part] = frozenset(read_tensor_infos(files[0]).tensors)
                except CheckpointError as exc:
                    self._keys[part] = exc
        found = self._keys[part]
        if isinstance(found, CheckpointError):
            raise found
        return found


def _is_vidxtend_folder(view: FolderView) -> bool:
    """VidXTend's ``resampler/``, or ``unet/`` + ``controlnet/`` whose UNet has CAM mergers."""
    if view.has_dir("resampler"):
        return True
    if not (view.has_dir("unet") and view.has_dir("controlnet")):
        return False
    try:
        keys = view.part_keys("unet")
    except CheckpointError:
        return False
    return keys is not None and _has_prefix(keys, "cross_attention_merger_")


def _is_msvid2vid_folder(view: FolderView) -> bool:
    return view.has_file(MSVID2VID_UNET_FILE)


def _unet_keys(view: FolderView) -> Optional[frozenset[str]]:
    return view.part_keys("unet") if view.has_dir("unet") else None


def _is_modelscope_folder(view: FolderView) -> bool:
    keys = _unet_keys(view)
    return keys is not None and "transformer_in.proj_in.weight" in keys


def _is_sdvsr_folder(view: FolderView) -> bool:
    keys = _unet_keys(view)
    return keys is not None and "transformer_in.proj_in.weight" not in keys and view.has_dir("controlnet")


# -- the table ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    name: str
    title: str  # what the file is, for people; its part before " (" is the short form
    use: str  # what this pack does with it
    kind: str = "file"  # "file" or "folder" (detected), "listing" (inspect's name for a plain folder)
    detect: Optional[Callable] = None  # file: set of tensor names -> bool; folder: FolderView -> bool
    fallback: Optional[Callable] = None  # a weaker detector, tried after every row's ``detect``
    roles: tuple[str, ...] = ()  # ROLES it fills; discovery looks for it in its first one
    loader: str = ""  # the module of ``streaming_core.checkpoints`` that reads (or renames) it
    components: tuple[tuple[str, str], ...] = ()  # (label, key prefix or "sub/"); "" = the rest of the file
    complete: bool = False  # every component is needed: inspect names a missing one
    note: str = ""  # what inspect always adds
    file_names: tuple[str, ...] = ()  # what discovery looks for, preferred first
    search: tuple[str, ...] = ()  # the models-root subfolders it is looked for in, in order
    role_needs: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (role, subfolders a folder needs for it)
    companions: tuple[str, ...] = ()  # file layouts inspect shows with a folder (found in it or beside it)

    @property
    def short(self) -> str:
        return self.title.split(" (")[0]

    def needs(self, role: str) -> tuple[str, ...]:
        return dict(self.role_needs).get(role, ())


_ST2V_PARTS = (("denoising UNet", "base_model."), ("CAM encoder", "unet."), ("APM resampler", "resampler."),
               ("OpenCLIP image encoder", "image_encoder."), ("CLIP text encoder", "text_encoder."), ("VAE", "vae."))
_VIDXTEND_PARTS = (("denoising UNet", "unet."), ("CAM encoder", "controlnet."), ("APM resampler", "resampler."),
                   ("CLIP text encoder", "text_encoder."), ("VAE", "vae."))
_VIDXTEND_NOTE = ("VidXTend has no image encoder: give one as image_encoder (a ViT-H/14 clip_vision file, "
                  "open_clip_pytorch_model.bin, or the official checkpoint)")
_ST2V_PLACES = ("streamingt2v", "checkpoints")  # models/checkpoints/: where the older StreamingT2V port kept it

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    # files, in detection order
    Layout("streamingt2v", "the official StreamingT2V checkpoint (streaming_t2v.ckpt layout: base_model./unet./...)",
           "the StreamingT2V model", detect=is_official_streamingt2v, fallback=_is_st2v_part,
           roles=("streamingt2v", "streamingt2v.image_encoder"), loader="st2v", components=_ST2V_PARTS,
           complete=True, file_names=("streaming_t2v.safetensors", "streaming_t2v.ckpt"), search=_ST2V_PLACES),
    Layout("vidxtend", "the VidXTend repack of StreamingT2V as one file (vidxtend[.fp16].safetensors: "
           "unet. = denoiser, controlnet. = CAM encoder; no image encoder)",
           "the StreamingT2V model, with an image encoder from another file", detect=is_vidxtend,
           roles=("streamingt2v",), loader="vidxtend", components=_VIDXTEND_PARTS, complete=True, note=_VIDXTEND_NOTE,
           file_names=("vidxtend.fp16.safetensors", "vidxtend.safetensors"), search=_ST2V_PLACES),
    Layout("modelscope_unet", "a stock ModelScope UNet (text-to-video, diffusers UNet3D, no CAM/APM tensors)",
           "the first-chunk model", detect=_is_stock_unet3d, roles=("first_chunk", "enhancer.unet"),
           loader="modelscope", components=(("UNet3D", ""),)),
    Layout("streamingt2v_denoiser", "a StreamingT2V denoiser alone (UNet3D with CAM mergers and APM mixers, "
           "no prefix)", "nothing on its own: the full checkpoint is needed", detect=_is_st2v_denoiser,
           loader="st2v", components=(("UNet3D with CAM/APM", ""),)),
    Layout("msvid2vid_unet", "the MS-Vid2Vid-XL UNet (the enhancer's; non_ema_0035000.pth layout: input_blocks.*)",
           "the enhancer's UNet", detect=_is_msvid2vid_unet, roles=("enhancer.unet",), loader="msvid2vid",
           components=(("Vid2VidSDUNet", ""),), file_names=(MSVID2VID_UNET_FILE,), search=("streamingt2v",)),
    Layout("clip_vision", "a Hugging Face CLIP vision model (ComfyUI clip_vision layout: vision_model.* + "
           "visual_projection.weight)", "the APM image encoder when it is ViT-H/14", detect=_is_clip_vision,
           roles=("streamingt2v.image_encoder",), loader="image_encoder",
           components=(("vision tower", "vision_model."), ("image projection", "visual_projection."),
                       ("text tower and CLIP head", "")),
           file_names=(CLIP_VISION_H14_FILE,), search=("clip_vision",)),
    Layout("open_clip", "open_clip CLIP weights (e.g. open_clip_pytorch_model.bin of ViT-H-14 laion2b_s32b_b79k)",
           "its visual tower is the APM image encoder; its text tower is MS-Vid2Vid-XL's text encoder",
           detect=_is_open_clip, roles=("streamingt2v.image_encoder", "enhancer.text_encoder"), loader="image_encoder",
           components=(("image tower", "visual."), ("text tower and CLIP head", "")),
           file_names=(MSVID2VID_FILES["text"],), search=("clip_vision", "streamingt2v")),
    Layout("clip_text", "a Hugging Face CLIPTextModel (text_model.*)", "a text encoder", detect=_is_clip_text,
           roles=("enhancer.text_encoder",), loader="enhancer", components=(("text encoder", ""),)),
    Layout("sd_checkpoint", "a Stable Diffusion LDM checkpoint (first_stage_model.* ...), e.g. "
           "v2-1_512-ema-pruned.ckpt", "its VAE is MS-Vid2Vid-XL's autoencoder", detect=_is_sd_checkpoint,
           roles=("enhancer.vae",), loader="ldm_vae",
           components=(("VAE", "first_stage_model."), ("SD UNet", "model.diffusion_model."),
                       ("text encoder", "cond_stage_model."), ("other", ""))),
    Layout("ldm_vae", "an autoencoder in the LDM layout (encoder.down.*)", "an enhancer VAE", detect=_is_ldm_vae,
           roles=("enhancer.vae",), loader="ldm_vae", components=(("VAE", ""),)),
    Layout("diffusers_vae", "a diffusers AutoencoderKL", "a VAE", detect=_is_diffusers_vae, roles=("enhancer.vae",),
           loader="enhancer", components=(("VAE", ""),)),
    Layout("raft", "torchvision RAFT optical flow (raft_large_C_T_SKHT_V2-ff5fadd5.pth)", "Stream-DiffVSR's flow",
           detect=_is_raft, roles=("upscaler.flow",), loader="sdvsr",
           components=(("feature encoder", "feature_encoder."), ("context encoder", "context_encoder."),
                       ("update block", "update_block."), ("mask predictor", "mask_predictor.")),
           file_names=(RAFT_FILE_NAME,), search=("stream_diffvsr",)),
    # folders, in detection order
    Layout("vidxtend_folders", "the VidXTend repack of StreamingT2V as diffusers folders "
           "(unet/ controlnet/ resampler/ text_encoder/ vae/; no image encoder)",
           "the StreamingT2V model, with an image encoder from another file", kind="folder",
           detect=_is_vidxtend_folder, roles=("streamingt2v",), loader="vidxtend",
           components=tuple((label, prefix.rstrip(".") + "/") for label, prefix in _VIDXTEND_PARTS), complete=True,
           note=_VIDXTEND_NOTE, file_names=("vidxtend",), search=_ST2V_PLACES),
    Layout("msvid2vid_folder", "a folder with the MS-Vid2Vid-XL files (damo/Video-to-Video; each file below)",
           "the enhancer", kind="folder", detect=_is_msvid2vid_folder, roles=("enhancer",), loader="enhancer"),
    Layout("modelscope_folder", "a diffusers text-to-video pipeline folder (text-to-video-ms-1.7b / zeroscope)",
           "the first-chunk model (its unet/)", kind="folder", detect=_is_modelscope_folder,
           roles=("first_chunk", "enhancer"), loader="modelscope",
           components=(("UNet3D", "unet/"), ("text encoder", "text_encoder/"), ("VAE", "vae/")),
           file_names=("text-to-video-ms-1.7b", "zeroscope_v2_576w"), search=("streamingt2v",),
           role_needs=(("enhancer", ("unet", "text_encoder", "vae")),)),
    Layout("sdvsr_folder", "the Stream-DiffVSR hub folder (unet/ controlnet/ vae/ text_encoder/)",
           "the x4 video upscaler", kind="folder", detect=_is_sdvsr_folder, roles=("upscaler",), loader="sdvsr",
           components=(("UNet", "unet/"), ("ARTG ControlNet", "controlnet/"), ("temporal VAE", "vae/"),
                       ("text encoder", "text_encoder/")), complete=True, companions=("raft",)),
    # what inspect calls everything else
    Layout("folder", "a folder of separate weight files (each one below)", "see each file", kind="listing"),
    Layout("models_root", "a models folder (ComfyUI's models/ or the CLI's --models-dir) with model subfolders",
           "inspect a subfolder or file below for its details", kind="listing"),
    Layout("unknown", "not a layout this pack knows", "nothing", kind="listing", components=(("tensors", ""),)),
)}


# -- questions asked of the table ---------------------------------------------------------------------
def _first_match(kind: str, subject) -> str:
    rows = [row for row in LAYOUTS.values() if row.kind == kind]
    for check in ("detect", "fallback"):
        for row in rows:
            detector = getattr(row, check)
            if detector is not None and detector(subject):
                return row.name
    return "unknown"


def detect_file_layout(sd: Mapping[str, object] | Iterable[str]) -> str:
    """The ``LAYOUTS`` name of a single file's tensors (only the names are used)."""
    return _first_match("file", frozenset(sd.keys() if isinstance(sd, Mapping) else sd))


def detect_folder_layout(folder: str | os.PathLike) -> str:
    """The ``LAYOUTS`` name of a model folder, or 'unknown'."""
    return _first_match("folder", FolderView(folder))


def is_vidxtend_folder(folder: str | os.PathLike) -> bool:
    return LAYOUTS["vidxtend_folders"].detect(FolderView(folder))


def describe(layout: str) -> str:
    return LAYOUTS.get(layout, LAYOUTS["unknown"]).title


def short(layout: str) -> str:
    return LAYOUTS.get(layout, LAYOUTS["unknown"]).short


def has_role(layout: str, role: str) -> bool:
    return role in LAYOUTS.get(layout, LAYOUTS["unknown"]).roles


def with_role(role: str, kind: Optional[str] = None) -> list[Layout]:
    """The rows filling ``role`` (of one ``kind`` if given), in table order."""
    return [row for row in LAYOUTS.values() if role in row.roles and kind in (None, row.kind)]


def folder_serves(folder: str | os.PathLike, role: str) -> bool:
    """Is ``folder`` a model folder that can be given as ``role`` (with every subfolder that needs)? A
    folder whose weights cannot be read is not offered."""
    try:
        row = LAYOUTS[detect_folder_layout(folder)]
    except CheckpointError:
        return False
    return role in row.roles and all((Path(folder) / sub).is_dir() for sub in row.needs(role))


def file_name_hints(role: str) -> tuple[str, ...]:
    """Lower-case stems of the known file names of ``role`` with "_", "-" and " " removed, to tell its
    files by name among unrelated ones without reading them (``flat_name``)."""
    stems = (flat_name(name.split(".")[0]) for row in LAYOUTS.values() if row.roles[:1] == (role,)
             for name in row.file_names)
    return tuple(dict.fromkeys(stems))


def flat_name(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


def known_places(role: str, models_dir: str | os.PathLike) -> list[tuple[Path, Layout]]:
    """Where discovery looks for ``role`` under a models root, preferred first: each row whose first
    role it is, each of its subfolders (``search``) in turn, each of its file names."""
    rows = [row for row in LAYOUTS.values() if row.roles[:1] == (role,)]
    folders = list(dict.fromkeys(sub for row in rows for sub in row.search))
    return [(Path(models_dir) / sub / name, row) for sub in folders for row in rows if sub in row.search
            for name in row.file_names]


def discover(role: str, models_dir: str | os.PathLike) -> Optional[Path]:
    """The first known place under ``models_dir`` that holds ``role``: a file of a file layout, or a
    folder its layout's detector recognises."""
    for path, row in known_places(role, models_dir):
        if row.kind == "file" and path.is_file():
            return path
        if row.kind == "folder" and path.is_dir() and folder_serves(path, role):
            return path
    return None


def top_level_names(keys: Iterable[str], limit: int = 8) -> str:
    names = sorted({k.split(".", 1)[0] for k in keys})
    return ", ".join(names[:limit]) + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def check_unet3d_kind(config, want: str) -> None:
    """A UNet3D config (built from shapes) is the ``want`` layout ('modelscope_unet' or
    'streamingt2v_denoiser'), else ValueError saying what it is: the one rule for "stock UNet, not a
    StreamingT2V denoiser" and back, after the key-name check."""
    if config.apm and config.cam_mergers:
        got = "streamingt2v_denoiser"
    elif not (config.apm or config.cam_mergers):
        got = "modelscope_unet"
    else:
        got = None
    if got != want:
        what = short(got) if got else "a UNet3D with only some of the CAM/APM layers"
        raise ValueError(f"its APM mixers and CAM mergers make it {what}, not {short(want)}")
