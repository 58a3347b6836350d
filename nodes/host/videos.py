"""ComfyUI's VIDEO type for the pack: inputs read lazily in windows, outputs backed by a file.

A node that makes a long video writes it frame by frame, as frames finish, into a lossless hand-off
file (``video_io.LOSSLESS``) under ComfyUI's temp folder, and returns a VIDEO that points at it. That
VIDEO is a ``VideoFromFile`` (so every native node takes it: GetVideoComponents decodes it, and
SaveVideo calls its ``save_to``, which re-encodes it frame by frame into a delivery mp4 with its
audio). The file is deleted when ComfyUI drops the VIDEO from its cache.

A VIDEO input becomes a ``FrameSource``: a file-backed VIDEO (LoadVideo, ours) is decoded lazily; a
VIDEO made from an IMAGE batch (CreateVideo) is sliced where it already is in memory. IMAGE inputs
work the same way, for short clips.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import uuid
import weakref
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Optional

import torch

from ...streaming_core.errors import InputError
from ...streaming_core.video_audio import AudioTrack
from ...streaming_core.video_io import (DELIVERY, LOSSLESS, FrameSource, VideoWriter, read_video, transcode,
                                        video_info)
from .images import FrameCollector, image_to_frames
from .runtime import comfy_module

HANDOFF_FOLDER = "streamingt2v_video"
TEMP_DIR_ENV = "STREAMING_TEMP_DIR"
log = logging.getLogger(__name__)


def handoff_directory() -> Path:
    """Where hand-off files go: ComfyUI's temp folder (emptied at start-up), else $STREAMING_TEMP_DIR or ./temp."""
    fp = comfy_module("folder_paths")
    base = Path(fp.get_temp_directory()) if fp is not None else Path(os.environ.get(TEMP_DIR_ENV) or "temp")
    return base / HANDOFF_FOLDER


class VanishedVideo(InputError):
    """A hand-off VIDEO whose file is gone."""


class _StreamedVideo:
    """A VIDEO backed by a hand-off file of known length, rate and size (see the module docstring)."""

    def __init__(self, path: Path, count: int, fps: Fraction, width: int, height: int, made_by: str):
        self.path, self.count, self.fps = Path(path), int(count), Fraction(fps)
        self.width, self.height, self.made_by = int(width), int(height), made_by
        weakref.finalize(self, _remove_quietly, str(self.path))

    def check(self) -> Path:
        if not self.path.is_file():
            raise VanishedVideo(
                f"the video made by {self.made_by} ({self.path.name}) no longer exists: its file under ComfyUI's temp "
                f"folder was deleted. Queue the graph again: {self.made_by} makes it again.")
        return self.path

    def frame_source(self) -> FrameSource:
        return FrameSource.from_file(self.check(), count=self.count, name=f"the video made by {self.made_by}")

    # -- VideoInput ----------------------------------------------------------------------------------
    def get_stream_source(self) -> str:
        return str(self.check())

    def get_dimensions(self) -> tuple[int, int]:
        return self.width, self.height

    def get_duration(self) -> float:
        return float(self.count / self.fps)

    def get_container_format(self) -> str:
        return "matroska"

    def get_components(self):
        """Every frame in memory (what GetVideoComponents asks for): only for clips that fit."""
        self.check()
        base = _comfy_video_base()
        if base is not object:
            return base.get_components(self)
        return _Components(read_video(self.path), self.fps, None)

    def save_to(self, path, format="auto", codec="auto", metadata: Optional[dict] = None):
        """Native SaveVideo: an H.264 mp4 that plays everywhere, written frame by frame (audio kept)."""
        fmt, cod = str(getattr(format, "value", format)), str(getattr(codec, "value", codec))
        if fmt not in ("auto", "mp4") or cod not in ("auto", "h264"):
            raise ValueError(f"the streamed video saves as mp4/h264 (asked for {fmt}/{cod})")
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError("the streamed video saves to a file path")
        transcode(self.check(), path, DELIVERY, metadata=metadata, fps=self.fps)


class _Components:
    """Outside ComfyUI: the fields of ComfyUI's VideoComponents that the pack uses."""

    def __init__(self, images, frame_rate, audio):
        self.images, self.frame_rate, self.audio = images, frame_rate, audio


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def _comfy_video_base():
    """ComfyUI's VideoFromFile (so native nodes accept ours), or object outside ComfyUI."""
    impl = comfy_module("comfy_api.input_impl")
    return impl.VideoFromFile if impl is not None else object


@functools.lru_cache(maxsize=1)
def streamed_video_class() -> type:
    base = _comfy_video_base()
    if base is object:
        return _StreamedVideo

    class StreamedVideo(_StreamedVideo, base):
        def __init__(self, path, count, fps, width, height, made_by):
            base.__init__(self, str(path))
            _StreamedVideo.__init__(self, path, count, fps, width, height, made_by)

    return StreamedVideo


def is_streamed(video) -> bool:
    return isinstance(video, _StreamedVideo)


# -- inputs ------------------------------------------------------------------------------------------
def video_source(value, what: str = "video", fps: float | Fraction = 8) -> FrameSource:
    """A FrameSource over an IMAGE batch (at ``fps``) or any VIDEO, read lazily where it is a file."""
    if isinstance(value, torch.Tensor):
        return FrameSource.from_batch(image_to_frames(value, what), fps, name=what)
    if isinstance(value, _StreamedVideo):
        return value.frame_source()
    if not hasattr(value, "get_components"):
        raise InputError(f"{what} must be an IMAGE batch or a VIDEO, got {type(value).__name__}")
    base = _comfy_video_base()
    if base is not object and isinstance(value, base):
        source = value.get_stream_source()
        if isinstance(source, io.BytesIO):  # frames and audio are read at once: two cursors
            source = io.BytesIO(source.getvalue())
        return FrameSource.from_file(source, name=what)
    components = value.get_components()  # a VIDEO made from frames already in memory (CreateVideo)
    audio = components.audio
    track = None
    if audio is not None and audio.get("waveform") is not None:
        track = AudioTrack(waveform=audio["waveform"], sample_rate=int(audio["sample_rate"]))
    return FrameSource.from_batch(image_to_frames(components.images, what), components.frame_rate or fps,
                                  audio=track, name=what)


# -- outputs -----------------------------------------------------------------------------------------
class HandoffWriter:
    """Frames pushed in order go into a hand-off file as they come; ``finish`` gives the VIDEO.

    ``with HandoffWriter(fps, "Stream-DiffVSR Upscale") as out: out.write(frames); video = out.finish()``;
    leaving the block by an exception (Cancel included) deletes the partial file.
    """

    def __init__(self, fps: Fraction, made_by: str, audio: Optional[AudioTrack] = None):
        self.made_by = made_by
        self.fps = Fraction(fps).limit_denominator(1001)
        name = "".join(c if c.isalnum() else "_" for c in made_by)
        self.path = handoff_directory() / f"{name}_{uuid.uuid4().hex[:12]}{LOSSLESS.suffix}"
        self._writer = VideoWriter(self.path, self.fps, format=LOSSLESS, audio=audio)
        self.video = None

    def write(self, frames: torch.Tensor) -> None:
        self._writer.write(frames)

    def finish(self):
        if self.video is None:
            self._writer.close()
            width, height = _frame_size(self.path)
            log.info("%s: wrote %d frames to %s", self.made_by, self._writer.frames_written, self.path)
            self.video = streamed_video_class()(self.path, self._writer.frames_written, self.fps, width, height,
                                                self.made_by)
        return self.video

    def __enter__(self) -> "HandoffWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._writer.abort()


def write_video_output(frames: Iterable[torch.Tensor], fps: Fraction, made_by: str,
                       audio: Optional[AudioTrack] = None):
    """Write frames ((H, W, 3) or (n, H, W, 3), in order) into a hand-off file as they come; the VIDEO."""
    with HandoffWriter(fps, made_by, audio) as out:
        for frame in frames:
            out.write(frame)
        return out.finish()


def _frame_size(path: Path) -> tuple[int, int]:
    info = video_info(path)
    return info["width"], info["height"]


# -- which outputs are used -------------------------------------------------------------------------
def output_used(prompt: Optional[dict], unique_id, slot: int) -> bool:
    """Whether any node of the queued graph takes output ``slot`` of node ``unique_id``. Without the
    graph (outside ComfyUI) every output counts as used."""
    if not prompt or unique_id is None:
        return True
    source = [str(unique_id), slot]
    for node in prompt.values():
        for value in (node.get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and [str(value[0]), value[1]] == source:
                return True
    return False


# -- a hand-off file deleted between runs -----------------------------------------------------------
_last_output: dict[tuple[str, str], "weakref.ref"] = {}
_generation: dict[tuple[str, str], int] = {}


def remember_output(node: str, unique_id, video) -> None:
    if unique_id is not None and video is not None:
        _last_output[(node, str(unique_id))] = weakref.ref(video)


def deliver_frames(frames: Iterable[torch.Tensor], count: int, prompt: Optional[dict], unique_id, *,
                   image_slot: int, video_slot: int, node: str, made_by: str, fps: Fraction,
                   audio: Optional[AudioTrack] = None):
    """(IMAGE or None, VIDEO or None): each finished frame goes to whichever of the node's two outputs is
    connected, as it comes (a whole-video IMAGE is built only when something uses it). The frames are
    drawn to the end either way: they are the node's work."""
    image = FrameCollector(count) if output_used(prompt, unique_id, image_slot) else None
    streamed = None
    if output_used(prompt, unique_id, video_slot):
        with HandoffWriter(fps, made_by, audio) as out:
            for part in frames:
                out.write(part)
                if image is not None:
                    image.add(part)
            streamed = out.finish()
        remember_output(node, unique_id, streamed)
    else:
        for part in frames:
            if image is not None:
                image.add(part)
    return (image.image() if image is not None else None), streamed


def output_generation(node: str, unique_id) -> int:
    """For IS_CHANGED: a number that changes once when the node's last VIDEO lost its file, so ComfyUI
    runs the node again instead of handing the cached VIDEO (now pointing at nothing) downstream."""
    key = (node, str(unique_id))
    ref = _last_output.get(key)
    video = ref() if ref is not None else None
    if video is not None and not video.path.is_file():
        _generation[key] = _generation.get(key, 0) + 1
        del _last_output[key]
        log.info("%s %s: its video file vanished; it runs again", node, unique_id)
    return _generation.get(key, 0)
