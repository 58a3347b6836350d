"""``upscale``: causal x4 video super-resolution with Stream-DiffVSR, streamed frame by frame.

Frames are decoded, upscaled and encoded one at a time, so memory does not depend on the length
of the video. The output file appears only when the run completes; Ctrl-C stops within one
denoising step and removes the unfinished file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from .. import validation
from ..checkpoints.sdvsr import load_sdvsr
from ..errors import InputError
from ..official import UPSCALE
from ..video_io import VideoWriter, iter_video_frames, video_info
from .devices import add_memory_arguments, load_device, manage_memory, pick_device, pick_dtype


def add_arguments(parser) -> None:
    parser.add_argument("--sdvsr", required=True, metavar="DIR",
                        help="Stream-DiffVSR folder in the hub layout (unet/, controlnet/, vae/, text_encoder/, ...)")
    parser.add_argument("--raft", metavar="FILE",
                        help="RAFT-large weights (raft_large_C_T_SKHT_V2-ff5fadd5.pth); default: looked up in DIR "
                             "and its parent folder")
    parser.add_argument("--video", required=True, metavar="IN", help="low-resolution input video")
    parser.add_argument("--out", required=True, metavar="OUT", help="output .mp4 (4x the input size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-frame initial noise (CPU generator)")
    parser.add_argument("--steps", type=int, default=UPSCALE.steps,
                        help=f"denoising steps per frame (the model is distilled for {UPSCALE.steps})")
    parser.add_argument("--tile", default="auto", metavar="N|auto|0",
                        help="RAFT tile side in output pixels: 0 = whole frame (official; RAFT memory grows with the "
                             "4th power of the size), auto = tile only when RAFT would need more than ~6 GiB (default)")
    parser.add_argument("--tile-overlap", type=int, default=128, help="overlap of RAFT tiles in output pixels")
    parser.add_argument("--start", type=int, default=0, help="first input frame")
    parser.add_argument("--frames", type=int, default=None, help="number of frames (default: all)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="UNet/ControlNet precision. fp32 (default) is the official setting (with TF32 matmuls "
                             "on GPUs); bf16/fp16 halve their weight memory. The VAE and RAFT always run in fp32")
    parser.add_argument("--crf", type=int, default=18, help="H.264 quality (lower = better)")
    add_memory_arguments(parser)


class _ProgressLine:
    """One self-overwriting stderr line: frames done, seconds per frame, estimated time left."""

    def __init__(self, total_frames, steps: int):
        self.total = total_frames
        self.steps = steps
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, preview) -> None:
        frames = done // self.steps
        if preview is None:
            return
        elapsed = time.perf_counter() - self.start
        rate = elapsed / max(frames, 1)
        of = f"/{self.total}" if self.total else ""
        left = f", ~{rate * (self.total - frames):.0f} s left" if self.total else ""
        line = f"frame {frames}{of}  {rate:.2f} s/frame{left}"
        if sys.stderr.isatty():
            print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def run(args) -> int:
    device = pick_device(args.device)
    # every setting and the output before any frame is read, a model loaded or its code imported
    validation.upscale_settings(args.seed, args.steps, args.tile, args.tile_overlap)
    validation.crf(args.crf)
    validation.whole("start", args.start, low=0, fix="the first frame is 0")
    if args.frames is not None:
        validation.frame_count(args.frames, 1, "at least one frame")
    out = validation.output_path(args.out, [args.video, args.raft])
    info = video_info(args.video)
    total = info["frames"] - args.start if info["frames"] else None
    if total is not None and args.frames is not None:
        total = min(total, args.frames)
    if total is not None and total <= 0:
        raise InputError(f"{args.video} has {info['frames']} frames: --start {args.start} leaves none to upscale.")
    # a lower bound of the output's size (it has 16x the input's pixels), so a full disk is refused now
    share = min(1.0, total / info["frames"]) if total and info["frames"] else 1.0
    validation.free_space(out, int(Path(args.video).stat().st_size * share), "the upscaled video")

    from ..pipelines.upscale import UpscaleSettings, upscale_stream  # loads diffusers: only once the settings are checked

    torch.backends.cuda.matmul.allow_tf32 = True  # as the official inference script
    torch.backends.cudnn.allow_tf32 = True
    tile = validation.parse_flow_tile(args.tile)
    print(f"loading {args.sdvsr} on {device} ...", file=sys.stderr)
    models = load_sdvsr(args.sdvsr, args.raft, device=load_device(args, device), dtype=pick_dtype(args.dtype, device))
    manage_memory(args, device, {"unet": [models.unet, models.controlnet], "vae": [models.vae],
                                 "raft": [models.raft]}, denoisers=("unet",))
    frames = iter_video_frames(args.video, start=args.start, limit=args.frames)
    settings = UpscaleSettings(args.seed, args.steps, tile, args.tile_overlap)
    stream = upscale_stream(models, frames, settings=settings, on_step=_ProgressLine(total, args.steps),
                            total_frames=total)
    written = 0
    try:
        with VideoWriter(args.out, fps=info["fps"], crf=args.crf) as writer:
            for frame in stream:
                writer.write(frame)
                written += 1
    except KeyboardInterrupt:
        print(f"\ninterrupted after {written} frames; {args.out} was not written", file=sys.stderr)
        return 130
    print(f"\nwrote {written} frames to {args.out}", file=sys.stderr)
    return 0
