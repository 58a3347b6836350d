"""Boundary checks for every number and output path a person gives, shared by the CLI, the pipelines'
public functions and the ComfyUI nodes, so all three accept and refuse the same values with the same
one-line message (the problem and the fix).

Why one module: NaN slips through ``not 0 < x`` style comparisons (every comparison with NaN is
False), argparse's ``float`` accepts ``nan``/``inf``, and an absurd size or length otherwise surfaces
minutes later as a raw out-of-memory traceback or a black video. The CLI runs these before any model
is loaded; the pipelines run them again, so a Python caller or a node gets the same refusal.

Pure functions, no torch: each returns the value in its checked type or raises ``InputError``.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

from .errors import InputError
from .official import EXTENSION, INITIAL_CHUNK, REFINE, UPSCALE

OFFICIAL_SCALES = sorted({EXTENSION.guidance, INITIAL_CHUNK.guidance, REFINE.guidance})  # the distinct ones

MAX_SEED = 2**63 - 1  # seeds are int64 (torch generators, the state files' metadata)
MAX_STEPS = 1000  # the 1000-step training schedule
LATENT_FACTOR = 8  # the VAEs work on 8x8 pixel blocks
# Documented ceilings (README, "Limits"). A frame of 4096x4096 is 16.8 MP, above 4K UHD (8.3 MP);
# 10,000 frames are 20 min at 8 fps, 8x the paper's longest video (1,200 frames). Longer videos:
# extend the result with --init-video (generate) or split it into parts (refine/upscale).
MAX_PIXELS = 4096 * 4096
MAX_FRAMES = 10_000
MIN_FPS, MAX_FPS = 0.1, 1000.0  # mp4 time bases are stored to 1/1001
CRF_RANGE = (0, 51)  # libx264's CRF scale (8-bit)


# -- numbers ---------------------------------------------------------------------------------------
def number(name: str, value: object, *, low: Optional[float] = None, high: Optional[float] = None,
           low_open: bool = False, fix: str = "") -> float:
    """A finite float in [low, high] (``low_open``: low itself excluded). NaN and inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise InputError(f"{name} must be a number, got {value!r}" + _fix(fix))
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}" + _fix(fix)) from None
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}" + _fix(fix))
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        raise InputError(f"{name} must be a number {_range(low, high, low_open)}, got {value!r}" + _fix(fix))
    return value


def whole(name: str, value: object, *, low: Optional[int] = None, high: Optional[int] = None, fix: str = "") -> int:
    """An int in [low, high]. Floats are refused even without a fraction: the callers count with the
    value (range(steps)), and a float there fails later with a traceback instead of this message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be a whole number, got {value!r}" + _fix(fix))
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{name} must be a whole number {_range(low, high)}, got {value!r}" + _fix(fix))
    return value


def seed(value: object, name: str = "seed") -> int:
    return whole(name, value, low=0, high=MAX_SEED, fix="any seed in that range gives a different video")


def steps(value: object, name: str = "steps", default_hint: str = "") -> int:
    return whole(name, value, low=1, high=MAX_STEPS, fix=default_hint)


def guidance(value: object, name: str = "guidance") -> float:
    """A guidance scale: finite and >= 0 (NaN or inf would turn every latent into NaN: a black video)."""
    return number(name, value, low=0.0, fix=f"the official scales are {OFFICIAL_SCALES[0]:g} to {OFFICIAL_SCALES[-1]:g}")


def fps(value: object, name: str = "fps") -> float:
    return number(name, value, low=MIN_FPS, high=MAX_FPS, fix="e.g. 8 (official) or 24")


def crf(value: object, name: str = "crf") -> int:
    return whole(name, value, low=CRF_RANGE[0], high=CRF_RANGE[1],
                 fix="libx264's quality scale: 0 lossless, 18 near-transparent (default), 51 worst")


def frame_count(value: object, minimum: int, what: str, name: str = "frames") -> int:
    """A video length: at least ``minimum`` (``what`` says why), at most ``MAX_FRAMES``."""
    value = whole(name, value, low=minimum, fix=what)
    if value > MAX_FRAMES:
        raise InputError(f"{name} {value:,} is above this pack's ceiling of {MAX_FRAMES:,} frames per run (about "
                         f"{MAX_FRAMES / 8 / 60:.0f} minutes at 8 fps; the paper's longest video has 1,200); make a "
                         f"longer video in several runs, each extending the last (generate --init-video, or the "
                         f"Chunk Loop node's run folder).")
    return value


def frame_size(height: object, width: object, multiple: int = LATENT_FACTOR) -> tuple[int, int]:
    """Height and width: positive multiples of ``multiple`` (the VAE's 8x8 blocks)."""
    for name, value in (("height", height), ("width", width)):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0 and value % multiple == 0
        if not ok:
            raise InputError(f"{name} must be a positive multiple of {multiple} (the VAE works on {multiple}x{multiple} "
                             f"pixel blocks), got {value!r}; e.g. 256.")
    return int(height), int(width)


def canvas(height: int, width: int, frames_at_once: int, what: str = "frames") -> None:
    """Refuse frames above ``MAX_PIXELS`` with what they would need: ``frames_at_once`` frames of
    float32 RGB pixels, the least any stage holds at once (the models need many times more)."""
    pixels = int(height) * int(width)
    if pixels > MAX_PIXELS:
        need = frames_at_once * pixels * 3 * 4
        raise InputError(f"{what} of {width}x{height} are above this pack's ceiling of {MAX_PIXELS:,} pixels "
                         f"(4096x4096): {frames_at_once} of them alone would need {need / 1e9:,.1f} GB as float32 "
                         f"pixels, before any model activations; choose a smaller width/height.")


def parse_flow_tile(value: int | str | None) -> int | str | None:
    """``flow_tile`` as the CLI and the node menu give it: ``"auto"``; ``None``/``"off"``/``"none"``/0
    for whole-frame RAFT (official); a tile side in HR pixels (an int or a digit string). A negative
    side is refused rather than read as "off": it is a typo, not a choice."""
    if value is None or value in ("off", "none"):
        return None
    if value == "auto":
        return "auto"
    try:
        side = int(value)
    except (TypeError, ValueError):
        raise InputError(f"flow tile must be 'auto', 'off' or a tile side in pixels, got {value!r}") from None
    if side < 0:
        raise InputError(f"flow tile must be 'auto', 'off' (or 0) or a positive tile side in pixels, got {side}; "
                         f"e.g. 512.")
    return side or None


def upscale_settings(noise_seed: object, steps_per_frame: object, tile: object, tile_overlap: object) -> None:
    """Stream-DiffVSR's settings, checked without importing its models (the CLI runs this first)."""
    seed(noise_seed)
    steps(steps_per_frame, default_hint=f"the distilled model is made for {UPSCALE.steps}")
    parse_flow_tile(tile)
    whole("flow tile overlap", tile_overlap, low=0, fix="the default is 128")


# -- output paths ----------------------------------------------------------------------------------
def output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), *,
                what: str = "output", folder: bool = False) -> Path:
    """Check that ``path`` can be written as a new file (or ``folder``) before any work starts: not
    one of ``inputs`` (never overwrite an input), not an existing folder (or file, for ``folder``),
    its parent a writable folder (or creatable under one)."""
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise InputError(f"{what} {path} is also an input file: refusing to overwrite the input; give the "
                             f"{what} another name.")
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder; give a folder path (it is created if missing).")
    if not folder and path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name, e.g. {path / 'out.mp4'}.")
    existing = _existing_ancestor(path.parent if not (folder and path.is_dir()) else path)
    if not existing.is_dir():
        raise InputError(f"cannot write {what} {path}: {existing} is a file, not a folder; choose another place.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what} {path}: no permission to write in {existing} (read-only folder or "
                         f"file system); choose another place.")
    return path


def free_space(path: str | os.PathLike, need_bytes: int, what: str) -> None:
    """Refuse at once, rather than after the work, when the disk that ``path`` goes to has less free
    space than ``need_bytes`` (a lower bound of what the run writes there)."""
    existing = _existing_ancestor(Path(path))
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise InputError(f"not enough free space in {existing} for {what}: at least {_size(need_bytes)} needed, "
                         f"{_size(free)} free; free some space or choose another place.")


def os_error_message(exc: OSError, doing: str = "") -> str:
    """A one-line message (problem and fix) for an OSError met while reading or writing files."""
    where = exc.filename or ""
    head = f"{doing} failed" if doing else "a file operation failed"
    fixes = {
        errno.ENOSPC: "the disk is full: free some space or write to another disk",
        errno.EDQUOT: "the disk quota is exhausted: free some space or write to another disk",
        errno.EACCES: "no permission: choose a folder you can write to",
        errno.EPERM: "no permission: choose a folder you can write to",
        errno.EROFS: "the file system is read-only: choose a writable folder",
        errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
        errno.EISDIR: "the path is a folder: give a file name",
        errno.ENOENT: "no such file or folder: check the path",
    }
    fix = fixes.get(exc.errno, "check the path and the disk")
    reason = exc.strerror or str(exc)
    return f"{head}: {reason}" + (f": {where}" if where else "") + f" ({fix})."


# -- helpers ---------------------------------------------------------------------------------------
def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (what a later mkdir -p would write into); a file in
    the middle of the path stops the walk there, so the caller can say that it is a file."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _range(low, high, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}" if not low_open else f"above {low} and at most {high}"
    if low is not None:
        return f"above {low}" if low_open else f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return "valid"


def _fix(fix: str) -> str:
    return f" ({fix})." if fix else "."
