"""``evaluate``: the paper's metrics (MAWE, SCuts, CLIP score) and seam measures for one or more videos.

Prints a table with one column per video (e.g. the three refiner modes side by side), and writes
the full report as JSON and the per-transition curves as a PNG when asked. A metric whose weights
are missing is skipped with a line that says which file to add; bad input fails before any model
loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from ..official import REFINE
from ..video_io import iter_video_frames, video_info
from .devices import pick_device
from .progress_bar import ProgressBar


def add_arguments(parser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to evaluate (compared side by side)")
    parser.add_argument("--prompt", help="the prompt the videos were made from (for the CLIP score)")
    parser.add_argument("--raft", metavar="FILE",
                        help="RAFT-large weights for MAWE (raft_large_C_T_SKHT_V2-ff5fadd5.pth); default: "
                             "MODELS/stream_diffvsr/raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    parser.add_argument("--clip", metavar="FILE",
                        help="open_clip ViT-H/14 file with the text tower (open_clip_pytorch_model.bin); default: "
                             "MODELS/streamingt2v/open_clip_pytorch_model.bin")
    parser.add_argument("--clip-image", metavar="FILE",
                        help="CLIP image tower (a clip_vision ViT-H file, an open_clip file or the StreamingT2V "
                             "checkpoint); default: the --clip file when it holds one, else "
                             "MODELS/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    parser.add_argument("--models-dir", default="models", metavar="MODELS", help="where default weight files are looked up")
    parser.add_argument("--chunks", default="st2v", metavar="st2v|refine|N:M|none",
                        help="chunk layout the videos were made with, for the seam measures: st2v = 16-frame chunks "
                             f"with 8 conditioning frames (generate), refine = windows of {REFINE.chunk} "
                             f"overlapping by {REFINE.overlap} (the refiner), N:M = chunk N overlap M, none = no seam measures (default: st2v)")
    parser.add_argument("--names", metavar="A,B,...", help="column names (default: the file names)")
    parser.add_argument("--mawe-size", type=int, default=720, help="side frames are resized to for MAWE (official: 720)")
    parser.add_argument("--json", metavar="OUT", help="write the full report (numbers and curves) as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="write the per-transition curves as a PNG")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def parse_chunks(text: str):
    from ..metrics.evaluate import CHUNK_PRESETS

    if text == "none":
        return None, 0
    if text in CHUNK_PRESETS:
        return CHUNK_PRESETS[text]
    try:
        chunk, overlap = (int(v) for v in text.split(":"))
    except ValueError:
        raise InputError(f"--chunks {text!r}: use st2v, refine, none or CHUNK:OVERLAP such as 24:8") from None
    if chunk < 2 or not 0 <= overlap < chunk:
        raise InputError(f"--chunks {text}: the chunk must be at least 2 frames and the overlap in [0, chunk)")
    return chunk, overlap


def _check_outputs(videos: list[Path], outputs: list[str]) -> None:
    inputs = {v.resolve() for v in videos}
    for out in outputs:
        if out and Path(out).resolve() in inputs:
            raise InputError(f"{out} is one of the input videos; choose another output name (inputs are never overwritten)")


def _load_models(args, device):
    from ..metrics import weights

    raft = Path(args.raft) if args.raft else weights.default_raft(args.models_dir)
    clip = Path(args.clip) if args.clip else weights.default_clip_text(args.models_dir)
    clip_image = (Path(args.clip_image) if args.clip_image
                  else weights.pick_clip_image_file(clip, args.models_dir) if args.prompt else None)
    models = weights.load_eval_models(raft, clip, clip_image, args.prompt, device,
                                      log=lambda message: print(message, file=sys.stderr))
    if models.flow is not None and args.mawe_size < models.flow.raft.min_image_size:
        raise InputError(f"--mawe-size {args.mawe_size} is below this RAFT's smallest input "
                         f"({models.flow.raft.min_image_size} px); the official size is 720")
    return models


class _CommandProgress:
    """One progress line for the whole command: every video's MAWE pairs and CLIP frames, with the time
    left from the first one (RAFT at 720x720 takes about a minute a pair on a CPU)."""

    def __init__(self, units_per_video: list[int]):
        self.units = units_per_video
        self.bar = ProgressBar("evaluate ", unit="MAWE pairs + CLIP frames",
                               long_run_hint="--mawe-size 256 or a GPU (--device cuda) is much faster; "
                                             "the official MAWE size is 720")

    def video(self, index: int):
        """The ``on_step`` for video ``index`` (videos run in order). The container's frame counts are
        estimates (Matroska stores none); each video's exact count replaces its estimate once decoded."""
        offset = sum(self.units[:index])

        def on_step(done: int, total: int, preview=None) -> None:
            self.units[index] = total
            self.bar(offset + done, sum(self.units), preview)

        return on_step


def run(args) -> int:
    from ..metrics.evaluate import EvalSettings, evaluate_video, format_table, progress_units, report_json, save_text

    videos = [Path(v) for v in args.videos]
    infos = [video_info(v) for v in videos]  # every input readable before any model loads
    for v, info in zip(videos, infos):
        if info["frames"] and info["frames"] < 2:
            raise InputError(f"{v} has {info['frames']} frame; evaluation compares consecutive frames and needs at least 2")
    names = args.names.split(",") if args.names else [v.name for v in videos]
    if len(names) != len(videos):
        raise InputError(f"--names gives {len(names)} names for {len(videos)} videos")
    chunk, overlap = parse_chunks(args.chunks)
    if args.mawe_size < 8 or args.mawe_size % 8:
        raise InputError(f"--mawe-size {args.mawe_size}: RAFT needs a multiple of 8 (official: 720)")
    _check_outputs(videos, [args.json, args.plot])
    device = pick_device(args.device)
    models = _load_models(args, device)
    settings = EvalSettings(prompt=args.prompt, chunk=chunk, overlap=overlap, mawe_size=args.mawe_size,
                            device=str(device))
    progress = _CommandProgress([progress_units(max(info["frames"], 2), models, settings) for info in infos])
    reports = []
    for index, (video, info, name) in enumerate(zip(videos, infos, names)):
        print(f"evaluating {video} ...", file=sys.stderr)
        reports.append(evaluate_video(lambda video=video: iter_video_frames(video), name, models, settings,
                                      fps=info["fps"], on_step=progress.video(index)))
    print(format_table(reports))
    if args.json:
        save_text(report_json(reports, settings), args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        from ..metrics.plot import render_curves, save_png

        save_png(render_curves(reports), args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
