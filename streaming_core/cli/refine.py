"""``refine``: enhance a long video with the randomized-blend refiner (MS-Vid2Vid-XL or a diffusers UNet3D).

    python -m streaming_core refine --enhancer models/streamingt2v --video in.mp4 --prompt "..." --out out.mp4

Streams: frames are read from the input as the wavefront needs them and written as they are final,
so RAM does not grow with the length (``--sde-noise brownian`` excepted: lock-step, whole video).
A resume state is saved next to the output (``OUT.state/``); an interrupted run continues with
``--resume OUT.state`` to exactly the video an uninterrupted run writes.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from .. import validation
from ..checkpoints.enhancer import load_enhancer
from ..errors import InputError
from ..models.enhancer import NativeResolution, plan_frames
from ..official import REFINE
from ..pipelines.refine import RefineSettings, file_source, refine_stream
from ..pipelines.refine_state import RefineStateFolder
from ..tiny.marker import tiny_weights_note
from ..video_io import VideoWriter
from .devices import add_memory_arguments, load_device, manage_memory, pick_device, pick_dtype
from .progress_bar import ProgressBar


def add_arguments(parser) -> None:
    parser.add_argument("--enhancer", nargs="+", required=True, metavar="PATH",
                        help="MS-Vid2Vid-XL's three files (non_ema_0035000.pth, open_clip_pytorch_model.bin, "
                             "v2-1_512-ema-pruned.ckpt) or their folder, or a diffusers UNet3D folder (zeroscope_v2_XL)")
    parser.add_argument("--video", required=True, help="input video (any length >= one chunk)")
    parser.add_argument("--prompt", required=True, help="what the video shows")
    parser.add_argument("--negative-prompt", default="", help="negative prompt (default empty, as official)")
    parser.add_argument("--out", required=True, help="output video file (.mp4)")
    parser.add_argument("--mode", default="randomized", choices=("randomized", "shared_noise", "independent"),
                        help="randomized blending (default), shared noise only, or independent chunks")
    parser.add_argument("--chunk", type=int, default=REFINE.chunk, help=f"frames per chunk (default {REFINE.chunk})")
    parser.add_argument("--overlap", type=int, default=REFINE.overlap,
                        help=f"frames shared by neighbouring chunks (default {REFINE.overlap})")
    parser.add_argument("--strength", type=float, default=REFINE.strength,
                        help=f"re-noising strength in (0, 1] ({REFINE.strength} = official t={REFINE.start_timestep})")
    parser.add_argument("--steps", type=int, default=REFINE.steps, help=f"solver steps (default {REFINE.steps})")
    parser.add_argument("--guidance", type=float, default=REFINE.guidance,
                        help=f"classifier-free guidance scale (default {REFINE.guidance})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, the blend cuts and the VAE sample")
    parser.add_argument("--sde-seed", type=int, default=None,
                        help="seed of the SDE noise (default: derived from --seed for gaussian; the official "
                             "entropy 0 for brownian)")
    parser.add_argument("--sde-noise", default="gaussian", choices=("brownian", "gaussian"),
                        help="SDE noise: the official Brownian tree (exact, slow and memory-hungry for long videos) "
                             "or an independent Gaussian per step (same law, fixed cost)")
    parser.add_argument("--width", type=int, default=None,
                        help="target canvas width (default: the model's native; on tiny test weights the video's own)")
    parser.add_argument("--height", type=int, default=None,
                        help="target canvas height (default: the model's native; on tiny test weights the video's own)")
    parser.add_argument("--no-pad", action="store_true", help="do not pad to the native canvas (fit only)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                        help="UNet dtype (auto: fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--fps", type=float, default=None, help="output frame rate (default: the input's)")
    parser.add_argument("--resume", metavar="STATE", help="continue an interrupted run from its state folder")
    parser.add_argument("--state", metavar="DIR", help="where to keep the resume state (default: OUT.state)")
    parser.add_argument("--keep-state", action="store_true", help="keep the resume state after a finished run")
    parser.add_argument("--save-every", type=int, default=4, help="save the resume state every N windows (default 4)")
    add_memory_arguments(parser)


def choose_resolution(native, height: int, width: int, args, tiny: bool):
    """(the canvas to refine on, a line saying why where it is not the model's native one or the one asked).

    On tiny test weights with no --width/--height, the video's own size without padding: the native
    1280x720 canvas costs tiny random models nearly the attention cost of the real ones (minutes per
    step on a CPU) and buys nothing but noise."""
    if tiny and args.width is None and args.height is None:
        return (NativeResolution(width, height, pad=False),
                f"tiny test weights: refining on the video's own {width}x{height} canvas instead of the model's "
                f"native {native.width}x{native.height} (give --width/--height to choose)")
    return NativeResolution(args.width or native.width, args.height or native.height,
                            pad=native.pad and not args.no_pad), None


def run(args) -> int:
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    # every setting and the output before the video is read and the enhancer loaded
    for name in ("width", "height"):
        if getattr(args, name) is not None:
            validation.whole(name, getattr(args, name), low=1, fix="leave it out for the enhancer's own canvas")
    # with one side given, the other is the enhancer's: the canvas is then checked by refine_stream
    given = NativeResolution(args.width, args.height) if args.width and args.height else None
    settings = RefineSettings(args.mode, args.chunk, args.overlap, args.strength, args.steps, args.guidance, args.seed,
                              args.sde_seed, args.sde_noise, given)
    if args.fps is not None:
        validation.fps(args.fps)
    validation.output_path(args.out, [args.video, *args.enhancer])
    source = file_source(args.video)  # read lazily: only the frame count and a hash of the file now
    if source.num_frames < args.chunk:
        raise InputError(f"{args.video} has {source.num_frames} frames, fewer than one chunk of {args.chunk}: "
                         f"use --chunk {source.num_frames} or a longer video.")
    state = None if args.sde_noise == "brownian" else (args.resume or args.state or str(args.out) + ".state")
    if state is not None and not args.resume and RefineStateFolder(state).exists():
        raise InputError(f"an unfinished run left its resume state at {state}: continue it with --resume {state}, "
                         f"or delete that folder to start over.")
    if args.resume and not RefineStateFolder(args.resume).exists():
        raise InputError(f"no resume state at {args.resume}: give the STATE folder an interrupted run left.")
    enhancer = load_enhancer(args.enhancer, device=load_device(args, device), dtype=dtype)
    manage_memory(args, device, {"unet": [enhancer.unet], "text_encoder": [enhancer.text_encoder],
                                 "vae": [enhancer.vae]}, denoisers=("unet",))
    print(f"enhancer: {enhancer.describe()}", file=sys.stderr)
    tiny = tiny_weights_note(args.enhancer, enhancer)
    if tiny:
        print(f"note: {tiny}", file=sys.stderr)
    resolution, why = choose_resolution(enhancer.resolution, source.height, source.width, args, bool(tiny))
    if why:
        print(why, file=sys.stderr)
    canvas = plan_frames(source.height, source.width, resolution, enhancer.vae_factor).canvas
    print(f"refining {source.num_frames} frames on a {canvas[1]}x{canvas[0]} canvas, {args.steps} steps per chunk "
          f"of {args.chunk}", file=sys.stderr)
    if device.type == "cpu" and canvas[0] * canvas[1] > 512 * 512:
        print(f"warning: a {canvas[1]}x{canvas[0]} canvas on the CPU takes minutes per step, hours in all; "
              "a GPU (--device cuda) or a smaller --width/--height is much faster", file=sys.stderr)
    progress = ProgressBar("refine ", long_run_hint="fewer --steps or a smaller --width/--height make it shorter",
                           unit="units (VAE slices + window x step)")
    count, size = 0, None
    progress.extra = f"0/{source.num_frames} frames final"

    parts = refine_stream(enhancer, source, args.prompt, args.negative_prompt, replace(settings, resolution=resolution),
                          on_step=progress, previews=False, state_dir=state, save_every=args.save_every,
                          keep_state=args.keep_state)
    fps = args.fps if args.fps is not None else (source.fps or 8)
    try:
        with VideoWriter(args.out, fps) as writer:  # published only when the whole video is written
            for part in parts:
                h, w = part.shape[1:3]
                part = part[:, : h - h % 2, : w - w % 2]  # H.264 needs even sizes
                writer.write(part)
                count, size = count + part.shape[0], tuple(part.shape[1:3])
                progress.extra = f"{count}/{source.num_frames} frames final"
    except KeyboardInterrupt:
        where = f"; continue with: --resume {state}" if state else ""
        print(f"\ninterrupted after {count} frames{where}", file=sys.stderr)
        return 130
    print(f"wrote {args.out}: {count} frames, {size[1]}x{size[0]}")
    return 0
