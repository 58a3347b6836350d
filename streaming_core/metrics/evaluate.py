"""``evaluate``: every measure on one video, as one report (numbers, per-transition curves, what was skipped).

A video is a ``frames()`` factory returning a fresh iterator of (H, W, 3) frames (uint8 or float
0..1): each measure streams the frames once, so memory does not grow with the length (a file is
decoded once per measure; a tensor is simply iterated again). Models are passed in ready; a measure
whose model is absent is skipped with the line that says which file to add.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from ..checkpoints.files import atomic_path
from ..errors import InputError
from ..official import REFINE
from ..sampling.blend import Window, chunk_windows
from .clip_score import ClipTextTower, clip_score
from .mawe import MAWE_COEFF, MAWE_SIZE, FlowFn, as_uint8_chw, mawe
from .scene_cuts import scene_cuts
from .scene_cuts import unavailable_reason as scene_cuts_unavailable
from .seams import flow_smoothness, overlap_transitions, seam_report_from_transitions

FrameFactory = Callable[[], Iterator[torch.Tensor]]
# StreamingT2V's own chunking (16-frame chunks, 8 conditioning frames) and the refiner's official windows
CHUNK_PRESETS = {"st2v": (16, 8), "refine": (REFINE.chunk, REFINE.overlap)}


@dataclass(frozen=True)
class EvalModels:
    flow: Optional[FlowFn] = None
    flow_source: Optional[str] = None  # the weight file behind ``flow`` (for the report)
    image_encoder: Any = None
    text_tower: Optional[ClipTextTower] = None
    clip_sources: Optional[str] = None
    skipped: tuple[str, ...] = ()  # the skip lines of models that could not be found


@dataclass(frozen=True)
class EvalSettings:
    prompt: Optional[str] = None
    chunk: Optional[int] = 16  # None: no chunk layout (no seam measures)
    overlap: int = 8
    mawe_size: int = MAWE_SIZE
    coeff: float = MAWE_COEFF
    device: str = "cpu"


@dataclass
class VideoReport:
    name: str
    frames: int
    fps: float
    mawe: Optional[float] = None
    warp_error: Optional[float] = None  # mean W_t
    flow_magnitude: Optional[float] = None  # mean OFS_t (px at the MAWE size)
    scuts: Optional[int] = None
    scut_frames: list[int] = field(default_factory=list)
    clip_score: Optional[float] = None
    seam_score: Optional[float] = None
    seam_per_overlap: list[float] = field(default_factory=list)
    flow_std: Optional[float] = None
    flow_std_at_seams: Optional[float] = None
    overlaps: list[list[int]] = field(default_factory=list)  # transition spans [a, b) of the chunk overlaps
    curves: dict[str, list[float]] = field(default_factory=dict)  # per transition t -> t+1
    clip_per_frame: list[float] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def chunk_layout(num_frames: int, chunk: Optional[int], overlap: int) -> Optional[list[Window]]:
    """Windows of the chunking the video was made with, or None (no layout, or shorter than 2 chunks)."""
    if chunk is None or num_frames <= chunk:
        return None
    return chunk_windows(num_frames, chunk, overlap)


def frame_differences(frames: Iterator[torch.Tensor]) -> list[float]:
    """Mean squared difference of consecutive frames on the 0..255 scale (the warp error's units)."""
    out, prev = [], None
    for frame in frames:
        cur = as_uint8_chw(frame).to(torch.float64)
        if prev is not None:
            if cur.shape != prev.shape:
                raise InputError(f"frame {len(out) + 1} is {tuple(cur.shape[1:])}, the first {tuple(prev.shape[1:])}: "
                                 "all frames of a video must have one size")
            out.append(float((cur - prev).pow(2).mean()))
        prev = cur
    if not out:
        raise InputError(f"evaluation needs a video of at least 2 frames; this one has {0 if prev is None else 1}")
    return out


def measures_clip(models: EvalModels, settings: EvalSettings) -> bool:
    return (models.text_tower is not None and models.image_encoder is not None
            and bool(settings.prompt and settings.prompt.strip()))


def progress_units(num_frames: int, models: EvalModels, settings: EvalSettings) -> int:
    """The slow units ``evaluate_video`` reports: MAWE's frame pairs (RAFT at 720x720) and CLIP's frames."""
    return ((num_frames - 1) if models.flow is not None else 0) + (num_frames if measures_clip(models, settings) else 0)


def evaluate_video(frames: FrameFactory, name: str, models: EvalModels, settings: EvalSettings,
                   fps: float | Fraction = 8, on_step: Optional[Callable] = None) -> VideoReport:
    """Every measure the models allow. ``on_step(done, total, None)`` counts ``progress_units``: MAWE's
    frame pairs, then CLIP's frames; raise in it to stop."""
    diffs = frame_differences(frames())
    n = len(diffs) + 1
    total = progress_units(n, models, settings)
    report = VideoReport(name=name, frames=n, fps=float(fps), skipped=list(models.skipped))
    report.curves["frame_difference"] = diffs
    windows = chunk_layout(n, settings.chunk, settings.overlap)
    if windows is not None:
        seams = seam_report_from_transitions(torch.tensor(diffs), windows)
        report.seam_score = seams.score
        report.seam_per_overlap = list(seams.per_overlap)
        report.overlaps = [list(span) for span in overlap_transitions(windows)]
    elif settings.chunk is not None:
        report.skipped.append(f"seam measures skipped: {n} frames are not more than one chunk of {settings.chunk}")

    if models.flow is not None:
        progress = None if on_step is None else (lambda done: on_step(done, total, None))
        result = mawe(frames(), models.flow, size=settings.mawe_size, coeff=settings.coeff, device=settings.device,
                      on_pair=progress)
        report.mawe = result.mawe
        report.warp_error = result.mean_warp_error
        report.flow_magnitude = result.mean_flow_magnitude
        report.curves["warp_error"] = list(result.warp_error)
        report.curves["flow_magnitude"] = list(result.flow_magnitude)
        smooth = flow_smoothness(result.flow_magnitude, windows)
        report.flow_std, report.flow_std_at_seams = smooth.overall, smooth.at_seams
        report.weights["raft"] = models.flow_source or "injected flow"

    missing = scene_cuts_unavailable()
    if missing is None:
        cuts = scene_cuts(frames(), fps=fps, count=n)
        report.scuts, report.scut_frames = cuts.count, list(cuts.cuts)
    else:
        report.skipped.append(missing)

    if models.text_tower is not None and models.image_encoder is not None:
        if measures_clip(models, settings):
            pairs = (n - 1) if models.flow is not None else 0
            progress = None if on_step is None else (lambda done: on_step(pairs + done, total, None))
            score = clip_score(frames(), settings.prompt, models.image_encoder, models.text_tower, on_frames=progress)
            report.clip_score, report.clip_per_frame = score.score, list(score.per_frame)
            report.weights["clip"] = models.clip_sources or "given towers"
        else:
            report.skipped.append("CLIP score skipped: no prompt given (pass --prompt TEXT, the video's prompt)")
    return report


# ------------------------------------------------------------------------------------------ output

ROWS = (  # (label, attribute, format)
    ("MAWE (lower = better)", "mawe", "{:.4f}"),
    ("  mean warp error W", "warp_error", "{:.4g}"),
    ("  mean flow OFS (px)", "flow_magnitude", "{:.3f}"),
    ("SCuts (lower = better)", "scuts", "{:d}"),
    ("CLIP score (cosine)", "clip_score", "{:.4f}"),
    ("seam score (~1 = seamless)", "seam_score", "{:.4g}"),
    ("flow std, whole video", "flow_std", "{:.3f}"),
    ("flow std, at chunk overlaps", "flow_std_at_seams", "{:.3f}"),
    ("frames", "frames", "{:d}"),
)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    return fmt.format(value)


def format_table(reports: Sequence[VideoReport]) -> str:
    """One column per video, one row per measure; '-' where a measure was skipped."""
    label_w = max(len(r[0]) for r in ROWS)
    cols = [[_cell(getattr(rep, attr), fmt) for _, attr, fmt in ROWS] for rep in reports]
    widths = [max(len(rep.name), *(len(c) for c in col)) for rep, col in zip(reports, cols)]
    lines = [" " * label_w + "  " + "  ".join(rep.name.rjust(w) for rep, w in zip(reports, widths))]
    for i, (label, _, _) in enumerate(ROWS):
        lines.append(label.ljust(label_w) + "  " + "  ".join(col[i].rjust(w) for col, w in zip(cols, widths)))
    notes = []
    for rep in reports:
        notes.extend(line for line in rep.skipped if line not in notes)
        notes.extend(line for line in (f"{metric} weights: {source}" for metric, source in rep.weights.items())
                     if line not in notes)
    return "\n".join(lines + notes)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def report_dict(reports: Sequence[VideoReport], settings: EvalSettings) -> dict:
    """JSON-ready: non-finite numbers (a ratio over zero motion) become null."""
    return _finite({
        "settings": {"prompt": settings.prompt, "chunk": settings.chunk, "overlap": settings.overlap,
                     "mawe_size": settings.mawe_size, "mawe_coeff": settings.coeff},
        "videos": [vars(rep) for rep in reports],
    })


def report_json(reports: Sequence[VideoReport], settings: EvalSettings) -> str:
    return json.dumps(report_dict(reports, settings), indent=1, allow_nan=False)


def save_text(text: str, path) -> None:
    """Written under a temporary name and renamed: never a half-written file under ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
