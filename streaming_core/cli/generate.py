"""``python -m streaming_core generate``: text -> long video (initial chunk + CAM extensions) -> mp4.

Frames are streamed to the mp4 as chunks finish (nothing of the video is kept in memory), and after
every chunk a resume state is saved next to the output (``OUT.mp4.state/``); an interrupted run
continues with ``--resume OUT.mp4.state`` to exactly the video an uninterrupted run writes. The state
is deleted after a finished run unless ``--keep-state``.

Without ``--st2v``/``--base`` the weights are looked for under ``--models-dir`` (default ./models), at
the places the layout table (``checkpoints/layouts.py``) names: ``streamingt2v/streaming_t2v.ckpt`` (or
``.safetensors``, VidXTend's files, or the same names under ``checkpoints/``) and the ModelScope folder
``streamingt2v/text-to-video-ms-1.7b/`` (or ``zeroscope_v2_576w/``, or ``streamingt2v/unet/``). When
no weights exist at all, it says so loudly and runs the tiny-model demo instead.
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from .. import validation
from ..checkpoints.inspect import inspect_path
from ..checkpoints.layouts import discover, has_role, known_places
from ..checkpoints.modelscope import find_unet_file, load_modelscope_unet
from ..checkpoints.st2v import load_streamingt2v
from ..errors import CheckpointError, InputError
from ..official import EXTENSION, INITIAL_CHUNK, VIDEO
from ..pipelines.checks import CHUNK_FRAMES, check_size
from ..pipelines.long_video import ExtensionSettings, InitialChunkSettings
from ..pipelines.resumable_loop import ResumePolicy, TextStart, run_chunk_loop
from ..pipelines.run_folder import RunFolder
from ..sampling.registry import OFFICIAL_SAMPLERS, sampler_names
from ..tiny.marker import tiny_weights_note
from ..tiny.modelscope import build_tiny_modelscope_unet
from ..tiny.st2v import build_tiny_streamingt2v
from ..video_io import VideoWriter, read_video, video_info
from .devices import DTYPES, add_memory_arguments, load_device, manage_memory, pick_device, pick_dtype
from .progress_bar import ProgressBar

DEMO_PROMPT = "a red panda climbing a tree, pipeline demo"
BANNER = ("PIPELINE DEMO: tiny random-weight models, no trained weights. The video proves the pipeline "
          "runs end to end; its content is noise.")
DEFAULT_MODELS_DIR = "models"


# -- arguments -------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generation_arguments(parser)
    g = parser.add_argument_group("models")
    g.add_argument("--st2v", help="StreamingT2V checkpoint: streaming_t2v.ckpt, its safetensors conversion, or the "
                                  "VidXTend repack (vidxtend.fp16.safetensors or its folders)")
    g.add_argument("--image-encoder", help="ViT-H/14 image encoder for a checkpoint without one (VidXTend): "
                                           "ComfyUI's clip_vision CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors or "
                                           "open_clip_pytorch_model.bin (default: looked up under --models-dir)")
    g.add_argument("--base", help="stock ModelScope text-to-video UNet for the first chunk: the "
                                  "text-to-video-ms-1.7b (or zeroscope_v2_576w) folder or its unet file")
    g.add_argument("--models-dir", default=DEFAULT_MODELS_DIR,
                   help="where to look for the weights when --st2v/--base are not given (default: ./models)")
    g.add_argument("--device", default=None, help="cuda, cuda:1, cpu, ... (default: cuda when available)")
    add_memory_arguments(g)
    g.add_argument("--dtype", choices=("auto",) + tuple(DTYPES), default="auto",
                   help="model precision (default: fp16 on a GPU, fp32 on the CPU)")


def add_generation_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    """The options ``generate`` and ``demo`` share."""
    parser.add_argument("--prompt", action="append", required=not demo, default=None,
                        help="the text; repeat it for one prompt per chunk (first chunk first; the last repeats)")
    parser.add_argument("--negative-prompt", default="", help="what to steer away from (default: none, as official)")
    parser.add_argument("--frames", type=int, default=24, help="length of the video in frames (at least 16)")
    parser.add_argument("--seed", type=int, default=0, help="controls every random draw of the run")
    parser.add_argument("--out", default="streamingt2v.mp4", help="output mp4")
    parser.add_argument("--fps", type=float, default=VIDEO.fps,
                        help=f"frame rate of the mp4 (default {VIDEO.fps:g}, as official)")
    parser.add_argument("--anchor", help="image for the APM anchor (default: frame 0 of the first chunk); other "
                                         "sizes are centre-cropped to the video's aspect ratio and resized")
    parser.add_argument("--init-video", help="extend this video instead of generating a first chunk "
                                             "(its size must be a multiple of 8; --frames counts its frames too)")
    parser.add_argument("--resume", metavar="STATE", help="continue an interrupted run from its state folder")
    parser.add_argument("--state", metavar="DIR", help="where to keep the resume state (default: OUT.state)")
    parser.add_argument("--keep-state", action="store_true", help="keep the resume state after a finished run")
    g = parser.add_argument_group("sampling")
    g.add_argument("--steps", type=int, default=3 if demo else EXTENSION.steps,
                   help="DDIM steps per extension chunk")
    g.add_argument("--eta", type=float, default=EXTENSION.eta,
                   help=f"DDIM eta of the extensions (official {EXTENSION.eta})")
    g.add_argument("--guidance", type=float, default=None,
                   help=f"joint text+anchor guidance of the extensions (official {EXTENSION.guidance})")
    g.add_argument("--text-guidance", type=float, default=None, help="eq. 12 of the paper: text scale")
    g.add_argument("--anchor-guidance", type=float, default=None, help="eq. 12 of the paper: anchor scale")
    g.add_argument("--rng", choices=("per_chunk", "official"), default="per_chunk",
                   help="per_chunk: each chunk's noise from (seed, chunk); official: one generator in turn")
    g.add_argument("--base-steps", type=int, default=3 if demo else INITIAL_CHUNK.steps,
                   help="steps of the first chunk")
    g.add_argument("--base-guidance", type=float, default=INITIAL_CHUNK.guidance,
                   help=f"guidance of the first chunk (official {INITIAL_CHUNK.guidance})")
    g.add_argument("--sampler", choices=sampler_names(), default=OFFICIAL_SAMPLERS["initial_chunk"],
                   help="first-chunk sampler (official: DPM-Solver++ 2M)")
    g.add_argument("--height", type=int, default=64 if demo else INITIAL_CHUNK.size,
                   help="frame height, a multiple of 8")
    g.add_argument("--width", type=int, default=64 if demo else INITIAL_CHUNK.size,
                   help="frame width, a multiple of 8")


def extension_settings(args):
    if args.guidance is not None and (args.text_guidance is not None or args.anchor_guidance is not None):
        raise InputError("give either --guidance (one joint scale) or --text-guidance/--anchor-guidance "
                         "(the paper's separate scales), not both.")
    text = args.text_guidance if args.text_guidance is not None else args.guidance
    return ExtensionSettings(
        prompts=args.prompt or [], negative_prompt=args.negative_prompt, seed=args.seed, steps=args.steps,
        eta=args.eta, guidance=EXTENSION.guidance if text is None else text, anchor_guidance=args.anchor_guidance, rng=args.rng)


def initial_settings(args):
    return InitialChunkSettings(steps=args.base_steps, guidance=args.base_guidance, sampler=args.sampler,
                                height=args.height, width=args.width)


def check_generation_args(args) -> None:
    """Every setting and the output, checked before any model is loaded (the pipelines check the
    settings again, for Python callers and the nodes)."""
    extension_settings(args)
    if not args.init_video and not args.resume:
        initial_settings(args)  # size, steps, guidance and sampler of the first chunk
    validation.fps(args.fps)
    fresh = not args.init_video and not args.resume
    validation.frame_count(args.frames, CHUNK_FRAMES if fresh else 1,
                           "a long video starts with one 16-frame chunk" if fresh else "the length of the whole video")
    height, width = args.height, args.width
    if args.init_video:
        info = video_info(args.init_video)  # a missing or unreadable video is refused here, before any state exists
        height, width = info["height"], info["width"]
        check_size(height, width)
    inputs = [getattr(args, name, None) for name in ("init_video", "anchor", "st2v", "base", "image_encoder")]
    out = validation.output_path(args.out, inputs)
    if not args.resume:
        folder = RunFolder(args.state or str(out) + ".state")
        folder.check_writable()
        # the chunk files of the resume state hold every frame (uint8) until the run ends
        validation.free_space(folder.path, args.frames * height * width * 3, "the resume state's frames")


# -- weights ---------------------------------------------------------------------------------------
def find_st2v(models_dir: str | Path) -> Optional[Path]:
    return discover("streamingt2v", models_dir)


def find_image_encoder(models_dir: str | Path) -> Optional[Path]:
    """A ViT-H/14 image encoder for checkpoints without one (VidXTend), where ComfyUI users usually have it."""
    return discover("streamingt2v.image_encoder", models_dir)


def image_encoder_for(st2v_path: Path, args) -> Optional[Path]:
    """The separate image encoder to load: the one given, else (for a checkpoint without its own) the
    first found under --models-dir. None lets the checkpoint's own encoder (or its clear error) stand."""
    if args.image_encoder:
        return Path(args.image_encoder)
    layout = inspect_path(st2v_path).layout
    if has_role(layout, "streamingt2v") and not has_role(layout, "streamingt2v.image_encoder"):
        return find_image_encoder(args.models_dir)
    return None


def find_base(models_dir: str | Path) -> Optional[Path]:
    """The UNet file of the first known first-chunk folder, or of a bare ``streamingt2v/unet/`` folder
    (the rule is the loader's: its diffusers file names, nothing read)."""
    places = [path for path, _ in known_places("first_chunk", models_dir)]
    for candidate in places + [Path(models_dir) / "streamingt2v" / "unet"]:
        if candidate.is_dir():
            try:
                return find_unet_file(candidate)
            except CheckpointError:
                continue
    return None


def read_image(path: str) -> torch.Tensor:
    """(H, W, 3) float 0..1 from an image file."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with torchvision and ComfyUI
        raise InputError("reading the anchor image needs Pillow (pip install pillow)") from exc
    if not Path(path).is_file():
        raise InputError(f"anchor image not found: {path}")
    try:
        with Image.open(path) as img:
            data = torch.frombuffer(bytearray(img.convert("RGB").tobytes()), dtype=torch.uint8)
            width, height = img.size
    except OSError as exc:
        raise InputError(f"{path} could not be read as an image ({exc})") from exc
    return data.reshape(height, width, 3).float() / 255.0


# -- running ---------------------------------------------------------------------------------------
LONG_RUN_HINT = "fewer --frames, --steps/--base-steps or a smaller --width/--height make it shorter"


def render(args, model, base_unet, label: str = "", long_run_hint: str = LONG_RUN_HINT) -> int:
    """Run the pipeline for ``args`` and stream the frames into ``args.out``; returns frames written."""
    settings = extension_settings(args)
    anchor = read_image(args.anchor) if args.anchor else None
    out = Path(args.out)
    folder = RunFolder(args.resume or args.state or str(out) + ".state")
    if not args.resume and folder.exists():
        raise InputError(f"an unfinished run left its resume state at {folder.path}: continue it with "
                         f"--resume {folder.path}, or delete that folder to start over.")
    policy = ResumePolicy(keep_state=args.keep_state, required=bool(args.resume),
                          on_resume=lambda message: print(message, file=sys.stderr))
    start = None  # resuming from a given video: the state's stored start
    if not args.init_video:
        start = TextStart(base_unet, initial_settings(args))
    elif not args.resume:
        start = read_video(args.init_video)
        if args.frames <= len(start):
            raise InputError(f"{args.init_video} already has {len(start)} frames; ask for more with --frames.")
    progress = ProgressBar(label, long_run_hint=long_run_hint)
    written = 0

    with VideoWriter(out, fps=args.fps) as writer:
        def on_frames(frames) -> None:
            nonlocal written
            writer.write(frames)
            written += len(frames)

        try:
            run_chunk_loop(model, start, args.frames, settings, folder, policy, anchor=anchor, on_step=progress,
                           on_frames=on_frames, keep_frames=False)
        except (KeyboardInterrupt, Exception) as exc:
            if folder.exists() and not isinstance(exc, InputError):
                print(f"\nstopped after {written} frames; continue with: --resume {folder.path}", file=sys.stderr)
            raise
    return written


def st2v_groups(model, base=None) -> dict:
    """The networks of a StreamingT2V run, grouped by what runs together (``--offload``)."""
    groups = {"unet": [model.unet, model.cam], "resampler": [model.resampler]}
    for name in ("text_encoder", "image_encoder", "vae"):
        if getattr(model, name, None) is not None:
            groups[name] = [getattr(model, name)]
    if base is not None:
        groups["base"] = [base]
    return groups


def check_given_paths(args) -> None:
    """A path the user typed that does not exist is reported as that path, before any search or load
    (a mistyped --st2v is not "no base model"); the numbers are checked before it."""
    for option, value in (("--st2v", args.st2v), ("--base", args.base), ("--image-encoder", args.image_encoder),
                          ("--anchor", args.anchor), ("--init-video", args.init_video)):
        if value and not Path(value).exists():
            raise InputError(f"{option} {value}: no such file or folder. Check the path.")


# -- the demo: tiny random models when no weights exist -------------------------------------------
@lru_cache(maxsize=1)
def tiny_models():
    """(tiny StreamingT2V, tiny ModelScope UNet), seeded, built once per process (eval, no grad:
    nothing a run does changes them)."""
    return build_tiny_streamingt2v(seed=0), build_tiny_modelscope_unet(seed=0)


def run_demo(args) -> int:
    """Also what ``generate`` falls back to when no weights exist (its sizes and steps are then
    reduced to demo values)."""
    if not args.prompt:
        args.prompt = [DEMO_PROMPT]
    check_generation_args(args)
    # generate's full-size defaults would be slow and pointless on random tiny models
    args.steps, args.base_steps = min(args.steps, 3), min(args.base_steps, 3)
    if args.height > 128 or args.width > 128:
        args.height, args.width = 64, 64
    print(BANNER, file=sys.stderr)
    model, base = tiny_models()
    with torch.inference_mode():
        written = render(args, model, base, label="demo ")
    print(f"wrote {args.out}: {written} frames at {args.fps:g} fps ({BANNER})", file=sys.stderr)
    return 0


def run(args) -> int:
    device = pick_device(args.device)  # a bad name is an error even where the demo runs instead
    check_generation_args(args)  # the numbers first: they need no file
    check_given_paths(args)
    st2v_path = Path(args.st2v) if args.st2v else find_st2v(args.models_dir)
    needs_base = not args.init_video and not args.resume
    base_path = Path(args.base) if args.base else (find_base(args.models_dir) if needs_base else None)
    if st2v_path is None and base_path is None and not args.st2v and not args.base:
        print("=" * 78 + "\nNO WEIGHTS FOUND: neither --st2v/--base were given nor was anything found under "
              f"{Path(args.models_dir).resolve()}/streamingt2v/.\nRunning the PIPELINE DEMO on tiny RANDOM models "
              "instead: the video shows the pipeline works end to end,\nit is NOT a trained model's output. Put "
              "the real weights there (see README) for real videos.\n" + "=" * 78, file=sys.stderr)
        return run_demo(args)
    if st2v_path is None:
        raise CheckpointError(f"no StreamingT2V checkpoint: give --st2v, or put streaming_t2v.ckpt under "
                              f"{Path(args.models_dir) / 'streamingt2v'} (or {Path(args.models_dir) / 'checkpoints'}).")
    if needs_base and base_path is None:
        raise CheckpointError(f"no ModelScope UNet for the first chunk: give --base (the text-to-video-ms-1.7b "
                              f"folder or its unet/diffusion_pytorch_model.safetensors), or put that folder under "
                              f"{Path(args.models_dir) / 'streamingt2v'}; or start from a video with --init-video.")

    dtype = pick_dtype(args.dtype, device)
    image_encoder = image_encoder_for(st2v_path, args)
    print(f"loading {st2v_path}" + (f" with the image encoder of {image_encoder}" if image_encoder else "") + " ...",
          file=sys.stderr)
    model = load_streamingt2v(st2v_path, image_encoder=image_encoder, dtype=dtype, device=load_device(args, device))
    base = None
    if base_path is not None:
        print(f"loading {base_path} ...", file=sys.stderr)
        base = load_modelscope_unet(base_path, dtype=dtype, device=load_device(args, device))
    tiny = tiny_weights_note([st2v_path, base_path, image_encoder], model, base)
    hint = LONG_RUN_HINT
    if tiny:
        print(f"note: {tiny}", file=sys.stderr)
        hint = "on tiny test weights, demo sizes are enough: --width 64 --height 64 --steps 3 --base-steps 3"
    manage_memory(args, device, st2v_groups(model, base), denoisers=("unet", "base"))
    print(f"generating {args.frames} frames at {args.width}x{args.height}" if not args.init_video and not args.resume
          else f"extending to {args.frames} frames", file=sys.stderr)
    written = render(args, model, base, long_run_hint=hint)
    print(f"wrote {args.out}: {written} frames at {args.fps:g} fps", file=sys.stderr)
    return 0
