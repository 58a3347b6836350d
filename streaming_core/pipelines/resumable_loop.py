"""The resume driver of the CLI's ``generate`` and the Chunk Loop node: the loop with a run folder that
makes it resumable.

A ComfyUI run is stopped by Cancel, an out-of-memory error or a closed server, and started again by
queueing the same graph. So the loop saves its state after every chunk in a folder named after the
run, and a later call with the same run name continues from it instead of starting over:

* the run name "auto" is a hash of everything that decides the video (prompts, seed, steps,
  guidance, size, start video, anchor, model weights and dtype, not the target length), so queueing
  the same graph again resumes, and changing anything starts a fresh run in another folder;
* a name of the user's choice continues only a run with the same start video and settings, and
  refuses anything else with a message that says what differs and what to do;
* the target length may change between calls: a longer one continues the stored run, a shorter one
  returns the stored frames cut to it.

The folder is removed after a finished run unless it is asked to be kept (then raising the target
length later continues the same video).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import validation
from ..errors import InputError
from ..progress import ProgressCallback
from ..video_io import to_uint8
from .checks import CONDITIONING_FRAMES, check_image_batch, check_size
from .long_video import (Anchor, ChunkDone, ExtensionSettings, InitialChunkSettings, extend_video, generate_long_video,
                         model_fingerprint)
from .run_folder import RunFolder, resume_message

AUTO = "auto"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def prompts_from_lines(text: str) -> list[str]:
    """One prompt per non-empty line (one per chunk; the last repeats)."""
    prompts = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not prompts:
        raise InputError("no prompt given: write one prompt, or one per line for one per chunk (the last repeats).")
    return prompts


def _digest(frames: torch.Tensor) -> str:
    return hashlib.sha256(to_uint8(frames).numpy().tobytes()).hexdigest()[:16]


def auto_run_name(model, video: torch.Tensor, settings: ExtensionSettings, anchor: Optional[Anchor]) -> str:
    """A folder name that changes with everything that decides the video except its length."""
    key = {"settings": settings.as_dict(), "size": list(video.shape[1:3]), "start": _digest(video),
           "start_frames": int(video.shape[0]), "anchor": anchor.source if anchor is not None else "first_frame",
           "model": model_fingerprint(model), "dtype": str(model.dtype)}
    return "auto-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def check_run_name(name: str) -> str:
    name = str(name).strip()
    if not _NAME.match(name) or name in (".", ".."):
        raise InputError(f"run name {name!r} must be 1-100 letters, digits, '.', '_' or '-' (no spaces or slashes), "
                         f"starting with a letter or digit; or 'auto', or empty for no resume state.")
    return name


@dataclass
class LoopResult:
    video: Optional[torch.Tensor]  # (frames, H, W, 3) on the output device; None when not kept
    resumed_from: int  # frames taken from an interrupted run's state (0: a fresh run)
    folder: Optional[Path]  # where the state is (None: not kept)


FrameSink = Callable[[torch.Tensor], None]


class _FirstFrames:
    """Passes on frames (n, H, W, 3) in order until ``limit`` have gone through (the rest is dropped)."""

    def __init__(self, sink: Optional[FrameSink], limit: int):
        self.sink, self.limit, self.sent = sink, limit, 0

    def __call__(self, frames: torch.Tensor) -> None:
        n = min(frames.shape[0], self.limit - self.sent)
        if self.sink is not None and n > 0:
            self.sink(frames[:n])
        self.sent += max(n, 0)


def _check_start(folder: RunFolder, start: torch.Tensor, video: torch.Tensor) -> None:
    if start.shape != video.shape or not torch.equal(to_uint8(start), to_uint8(video)):
        raise InputError(
            f"the run folder {folder.path} continues a run that started from another video "
            f"({start.shape[0]} frames of {start.shape[2]}x{start.shape[1]}; this one has {video.shape[0]} of "
            f"{video.shape[2]}x{video.shape[1]}, or the same size with other pixels). Use another run name (or "
            f"'auto'), or delete that folder to start over. If the start video comes from a node with a "
            f"randomized seed, set its seed to 'fixed' so a queued-again graph makes the same video.")


def _resume_frames(folder: RunFolder, state, video: Optional[torch.Tensor], sink: FrameSink,
                   keep: bool) -> Optional[torch.Tensor]:
    """The frames the interrupted run made, after checking it started from ``video`` (None: not checked,
    the stored start is used): each chunk goes to ``sink``; all of them together are returned only when
    ``keep``."""
    chunks = folder.iter_frames(state)
    stored = next(chunks)
    if video is not None:
        _check_start(folder, stored, video)
    start = video.cpu() if video is not None else stored
    sink(start)
    kept = [start] if keep else None
    for chunk in chunks:
        sink(chunk)
        if keep:
            kept.append(chunk)
    return torch.cat(kept) if keep else None


@dataclass(frozen=True)
class TextStart:
    """A run whose first chunk is generated from text (``generate_long_video``) rather than given.
    ``base_unet``: the stock ModelScope UNet (None when the run only resumes: its first chunk exists)."""

    base_unet: object
    initial: InitialChunkSettings = InitialChunkSettings()


@dataclass(frozen=True)
class ResumePolicy:
    """How a run treats its state folder.

    keep_state: keep the folder after a finished run (raising the length later continues the video).
    required: the folder must hold a state (``--resume``): a missing one is an error, not a fresh run.
    refusal_hint: added to the error when the stored run refuses this one (the node names its run names).
    on_resume(message): tells the user where a resumed run picks up, before any new chunk starts.
    """

    keep_state: bool = False
    required: bool = False
    refusal_hint: str = ""
    on_resume: Optional[Callable[[str], None]] = None


def run_chunk_loop(model, start: torch.Tensor | TextStart | None, frames: int, settings: ExtensionSettings,
                   folder: Optional[RunFolder], policy: ResumePolicy = ResumePolicy(), *,
                   anchor: Optional[torch.Tensor | Anchor] = None, on_step: Optional[ProgressCallback] = None,
                   on_frames: Optional[FrameSink] = None, keep_frames: bool = True,
                   output_device: str | torch.device = "cpu") -> LoopResult:
    """The one resume driver (the CLI's ``generate`` and the Chunk Loop node): make the video to
    ``frames`` frames from ``start`` (a video (F, H, W, 3), or a ``TextStart``), saving the state in
    ``folder`` after every chunk (None: no state), and continue the run stored there if there is one.
    A stored run started from a given video is checked against ``start`` (None: not checked).

    on_frames: gets the video's frames in order as they are final ((n, H, W, 3), ``frames`` in all: the
        start, the frames of an interrupted run, then each new chunk), e.g. to write them to a file.
    keep_frames: False: the whole video is not kept (``LoopResult.video`` is None), so memory does not
        grow with the length; frames then only reach ``on_frames``.
    A run that fails before its first state is saved leaves no folder behind.
    """
    video = None
    if isinstance(start, torch.Tensor):
        video = check_image_batch(start, "the start video", CONDITIONING_FRAMES).float()
        check_size(int(video.shape[1]), int(video.shape[2]))
    sink = _FirstFrames(on_frames, frames)

    def on_chunk(done: ChunkDone) -> None:
        if folder is not None:
            folder.record(done)
        sink(done.frames[:done.keep])

    common = dict(anchor=anchor, on_step=on_step, output_device=output_device, keep_frames=keep_frames,
                  on_chunk=on_chunk if (folder is not None or on_frames is not None) else None)
    if folder is not None and (folder.exists() or policy.required):
        state = folder.load_state()  # a required state that is missing is refused here
        previous = _resume_frames(folder, state, video, sink, keep_frames)
        if policy.on_resume is not None:
            policy.on_resume(resume_message(state.frames_done, frames, folder.path))
        try:
            if isinstance(start, TextStart) and state.params.get("start", {}).get("kind") != "video":
                out = generate_long_video(model, start.base_unet, frames, settings, start.initial, resume=state,
                                          previous_frames=previous, **common)
            else:
                out = extend_video(model, previous, frames, settings, resume=state, **common)
        except InputError as exc:
            if not policy.refusal_hint:
                raise
            raise InputError(f"{exc} (run folder {folder.path}: {policy.refusal_hint})") from exc
        resumed = state.frames_done
    else:
        created = False
        if video is not None:
            validation.frame_count(frames, 1, "the length of the whole video")
            if frames <= video.shape[0]:
                raise InputError(f"the start video already has {video.shape[0]} frames; ask for more than that.")
        if folder is not None:
            folder.check_writable()
            created = not folder.path.exists()
        try:
            if video is not None:
                if folder is not None:
                    folder.record_start(video)
                sink(video)
                out = extend_video(model, video, frames, settings, **common)
            else:
                out = generate_long_video(model, start.base_unet, frames, settings, start.initial, **common)
        except BaseException:
            if created and not folder.exists():
                folder.remove()  # stopped before the first state: leave no half state (chunk_000000 alone)
            raise
        resumed = 0
    if folder is not None and not policy.keep_state:
        folder.remove()
    return LoopResult(out, resumed, folder.path if (folder is not None and policy.keep_state) else None)
