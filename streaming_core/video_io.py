"""Reading and writing videos with PyAV (which ComfyUI already ships), frame by frame.

Frames are ``(H, W, 3)`` tensors: uint8 when read, float 0..1 or uint8 when written, the same
layout as ComfyUI's IMAGE batches. Reading is an iterator and writing is incremental, so memory
does not grow with the length of the video; a writer publishes its file only when closed
successfully (no half-written mp4 under the final name).
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Optional

import torch

from . import validation
from .errors import InputError


def _av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a requirement
        raise InputError("reading/writing video needs PyAV: pip install av") from exc
    return av


def video_info(path: str | os.PathLike) -> dict:
    """fps (Fraction), frame count (may be an estimate from the container), width, height."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return {
                "fps": Fraction(stream.average_rate) if stream.average_rate else Fraction(8),
                "frames": stream.frames,
                "width": stream.codec_context.width,
                "height": stream.codec_context.height,
            }
    except (av.error.FFmpegError, IndexError) as exc:
        raise InputError(f"{path} could not be opened as a video ({exc})") from exc


def iter_video_frames(path: str | os.PathLike, start: int = 0, limit: Optional[int] = None) -> Iterator[torch.Tensor]:
    """Yield (H, W, 3) uint8 RGB frames one at a time."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(f"{path} could not be opened as a video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise InputError(f"{path} has no video stream")
        n = 0
        frames = container.decode(video=0)
        for index in itertools.count():
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as exc:
                raise InputError(f"{path}: frame {index} could not be decoded ({exc}); the file is damaged or "
                                 f"incomplete. Re-encode or re-download it.") from exc
            if frame is None:
                break
            if index < start:
                continue
            if limit is not None and n >= limit:
                break
            yield torch.from_numpy(frame.to_ndarray(format="rgb24"))
            n += 1


def read_video(path: str | os.PathLike, start: int = 0, limit: Optional[int] = None) -> torch.Tensor:
    """All frames as one (F, H, W, 3) float tensor in 0..1 (an IMAGE batch)."""
    frames = [f for f in iter_video_frames(path, start, limit)]
    if not frames:
        raise InputError(f"{path} contains no frames")
    return torch.stack(frames).float().div_(255.0)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """(…, H, W, 3) float 0..1 (rounded) or uint8 -> uint8 on the CPU."""
    if frames.dtype == torch.uint8:
        return frames.cpu()
    return frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def _yuv420p_frame(av, rgb, index: int):
    """The encoder's input frame, converted to yuv420p here and handed over as a packed copy.

    Handing PyAV an rgb24 frame lets it convert inside ``encode``, and that path makes libx264's output
    depend on the run: the same frames encoded twice decoded differently (up to 0.098) in 2 to 4 of 5
    runs, single-threaded or not. Converting first (the same swscale conversion) and passing packed
    planes with an explicit pts gave the identical file in every run, so same frames = same file.
    """
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    frame.pts = index
    return frame


class VideoWriter:
    """Incremental H.264 mp4 writer: ``with VideoWriter(path, fps=8) as w: w.write(frames)``."""

    def __init__(self, path: str | os.PathLike, fps: float | Fraction = 8, crf: int = 18, codec: str = "libx264"):
        self.path = Path(path)
        validation.fps(fps)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf = validation.crf(crf)
        self.codec = codec
        self._tmp = self.path.with_name(self.path.name + ".partial" + (self.path.suffix or ".mp4"))
        self._container = None
        self._stream = None
        self.frames_written = 0

    def _open(self, height: int, width: int) -> None:
        av = _av()
        if height % 2 or width % 2:
            raise InputError(f"H.264 needs even frame sizes, got {width}x{height}: crop or resize by one pixel")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream = self._container.add_stream(self.codec, rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf)}

    def write(self, frames: torch.Tensor) -> None:
        """Append (H, W, 3) or (F, H, W, 3) frames (float 0..1 or uint8)."""
        av = _av()
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must be (F, H, W, 3), got {tuple(frames.shape)}")
        frames = to_uint8(frames)
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        for frame in frames.numpy():
            packet = self._stream.encode(_yuv420p_frame(av, frame, self.frames_written))
            self._container.mux(packet)
            self.frames_written += 1

    def close(self) -> None:
        if self._container is None:
            raise InputError(f"no frames were written to {self.path}")
        try:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()  # a failed final mux must not leave the .partial file behind
            raise

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - best effort while already failing
                pass
            self._container = None
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | os.PathLike, frames: Iterable[torch.Tensor] | torch.Tensor, fps: float = 8) -> Path:
    """Write a whole IMAGE batch, or an iterable of frames/batches, as an mp4."""
    with VideoWriter(path, fps) as writer:
        if isinstance(frames, torch.Tensor):
            writer.write(frames)
        else:
            for chunk in frames:
                writer.write(chunk)
    return Path(path)
