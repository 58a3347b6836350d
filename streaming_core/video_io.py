"""Reading and writing videos with PyAV (which ComfyUI already ships), frame by frame.

Frames are ``(H, W, 3)`` tensors: uint8 when read, float 0..1 or uint8 when written, the same
layout as ComfyUI's IMAGE batches. Reading is an iterator and writing is incremental, so memory
does not grow with the length of the video; a writer publishes its file only when closed
successfully (no half-written mp4 under the final name).

Two encodings (``VideoFormat``): ``DELIVERY`` (H.264 yuv420p mp4, plays everywhere) for files a
person keeps, and ``LOSSLESS`` (H.264 RGB at qp 0 in Matroska: the exact 8-bit frames) for the
intermediate files that hand a video from one node to the next. Measured on this machine (2-core
CPU, PyAV 18.1, 1280x720): lossless H.264 RGB encodes in 22 ms and decodes in 24 ms a frame, about
2.5 MB a frame; FFV1 (also exact) takes 46 / 42 ms; H.264 yuv444p qp 0 is not exact (2 levels).
``FrameSource`` reads any of them (or an in-memory batch) lazily, in windows.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

import torch

from . import validation
from .errors import InputError
from .video_audio import AudioMuxer, AudioTrack

Source = Union[str, os.PathLike, io.IOBase]


def _av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a requirement
        raise InputError("reading/writing video needs PyAV: pip install av") from exc
    return av


def _open_source(source: Source):
    """An av input container over a path or a file object, or a one-line error."""
    av = _av()
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise InputError(f"video not found: {source}")
        source = str(source)
    elif hasattr(source, "seek"):
        source.seek(0)
    try:
        return av.open(source)
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"{_name(source)} could not be opened as a video ({exc})") from exc


def _name(source) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "the in-memory video"


def video_info(path: Source) -> dict:
    """fps (Fraction), frame count (from the container: Matroska stores no count, so there it is the
    duration times the rate; 0 when unknown), width, height, and ``has_audio``."""
    av = _av()
    container = _open_source(path)
    try:
        with container:
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate) if stream.average_rate else Fraction(8)
            frames = stream.frames
            if not frames and container.duration:
                frames = round(container.duration / av.time_base * fps)
            return {
                "fps": fps,
                "frames": frames,
                "exact_count": bool(stream.frames),
                "width": stream.codec_context.width,
                "height": stream.codec_context.height,
                "has_audio": bool(container.streams.audio),
            }
    except (av.error.FFmpegError, IndexError) as exc:
        raise InputError(f"{_name(path)} could not be opened as a video ({exc})") from exc


def count_frames(source: Source) -> int:
    """The exact number of frames: one pass over the packets (no decoding)."""
    container = _open_source(source)
    with container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def iter_video_frames(path: Source, start: int = 0, limit: Optional[int] = None) -> Iterator[torch.Tensor]:
    """Yield (H, W, 3) uint8 RGB frames one at a time (a path or a file object)."""
    av = _av()
    container = _open_source(path)
    with container:
        if not container.streams.video:
            raise InputError(f"{_name(path)} has no video stream")
        n = 0
        frames = container.decode(video=0)
        for index in itertools.count():
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as exc:
                raise InputError(f"{_name(path)}: frame {index} could not be decoded ({exc}); the file is damaged or "
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

    Handing PyAV an rgb24 frame lets it convert inside ``encode``, and that path made libx264's output
    depend on the run: the same frames encoded twice decoded differently (up to 0.098) in 2 to 4 of 5
    runs. Converting first (the same swscale conversion) and passing packed planes with an explicit pts,
    with the encoder single-threaded, made that rare; the rest came from MB-tree (see DETERMINISTIC_X264).
    """
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    frame.pts = index
    return frame


@dataclass(frozen=True)
class VideoFormat:
    """How a writer encodes: codec, pixel format, encoder options, container."""

    codec: str
    pix_fmt: str
    options: dict = field(default_factory=dict)
    container: str = "mp4"
    suffix: str = ".mp4"
    even_sides: bool = True  # yuv420p needs even sides; RGB does not


# libx264 single-threaded, lookahead included: with its default threads, the same frames encoded 40 times
# under CPU load gave 2 files whose first two frames decoded differently (up to 0.09). Single-threaded, the
# output still depended on the process's history: PyAV's libx264 (core 165) with MB-tree rate control on
# encoded the same 12 yuv420p frames at 320x192 into 4 different streams in 48 encodes in one process whose
# heap was dirtied between encodes (and 2 in 20 plain repeats), decoding up to 23/255 apart on single frames;
# the same 12 frames at 32x32 inside ComfyUI made a resumed refine's mp4 look unlike the uninterrupted one
# although the refined frames were identical. With mbtree=0: 1 stream in 48 (rc-lookahead=0, aq-mode=0 or
# bframes=0 also gave 1; mbtree=0 is the narrowest, it only drops MB-tree's small gain at crf 18). The
# encoder is not the bottleneck next to a diffusion model (a few ms a frame at 720p).
DETERMINISTIC_X264 = {"threads": "1",
                      "x264-params": "threads=1:lookahead-threads=1:sync-lookahead=0:deterministic=1:mbtree=0"}


def delivery_format(crf: int = 18, codec: str = "libx264") -> VideoFormat:
    """H.264 yuv420p mp4 at ``crf`` (18: visually lossless): what players and browsers play."""
    return VideoFormat(codec, "yuv420p", {"crf": str(crf), **DETERMINISTIC_X264})


DELIVERY = delivery_format()
# Exact 8-bit RGB (qp 0 is lossless; no chroma subsampling), fast to write and read (see the top).
LOSSLESS = VideoFormat("libx264rgb", "rgb24", {"qp": "0", "preset": "ultrafast", **DETERMINISTIC_X264}, "matroska",
                       ".mkv", even_sides=False)


class VideoWriter:
    """Incremental video writer: ``with VideoWriter(path, fps=8) as w: w.write(frames)``.

    ``audio``: an ``AudioTrack`` muxed into the file (cut to ``audio.seconds``). ``metadata``: container
    tags (values that are not strings are written as JSON, as ComfyUI's SaveVideo does). The file is
    written under a temporary name and appears under ``path`` only when ``close`` succeeds.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction = 8, crf: int = 18, codec: str = "libx264",
                 *, format: Optional[VideoFormat] = None, audio: Optional[AudioTrack] = None,
                 metadata: Optional[dict] = None):
        self.path = Path(path)
        validation.fps(fps)
        self.fps = Fraction(fps).limit_denominator(1001)
        validation.crf(crf)
        self.format = format or delivery_format(crf, codec)
        self.audio = audio
        self.metadata = metadata
        suffix = self.path.suffix or self.format.suffix
        self._tmp = self.path.with_name(self.path.name + ".partial" + suffix)
        self._container = None
        self._stream = None
        self.frames_written = 0

    def _open(self, height: int, width: int) -> None:
        av = _av()
        fmt = self.format
        if fmt.even_sides and (height % 2 or width % 2):
            raise InputError(f"H.264 needs even frame sizes, got {width}x{height}: crop or resize by one pixel")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mp4: keep ComfyUI's metadata tags. Matroska: no random segment id, so the same frames give the
        # same bytes (a resume state recognises a re-made hand-off file by its hash).
        options = {"movflags": "use_metadata_tags"} if fmt.container == "mp4" else {"fflags": "+bitexact"}
        self._container = av.open(str(self._tmp), mode="w", format=fmt.container, options=options)
        for key, value in (self.metadata or {}).items():
            self._container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        self._stream = self._container.add_stream(fmt.codec, rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = fmt.pix_fmt
        self._stream.options = dict(fmt.options)
        if self.audio is not None:
            AudioMuxer(self._container, self.audio).write()  # small: all of it now, before any frame

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
        elif (frames.shape[1], frames.shape[2]) != (self._stream.height, self._stream.width):
            raise InputError(f"all frames of a video must have one size: {frames.shape[2]}x{frames.shape[1]} after "
                             f"{self._stream.width}x{self._stream.height}")
        for frame in frames.numpy():
            packet = self._stream.encode(self._encoder_frame(av, frame))
            self._container.mux(packet)
            self.frames_written += 1

    def _encoder_frame(self, av, rgb):
        if self.format.pix_fmt == "yuv420p":
            return _yuv420p_frame(av, rgb, self.frames_written)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")  # the encoder's own format: no conversion
        frame.pts = self.frames_written
        return frame

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


def transcode(source: Source, path: str | os.PathLike, format: VideoFormat = DELIVERY,
              metadata: Optional[dict] = None, fps: Optional[Fraction] = None) -> Path:
    """Re-encode a video file frame by frame (its audio carried along), e.g. the lossless hand-off
    file into a delivery mp4. Odd sides lose their last row/column for yuv420p."""
    info = video_info(source)
    audio = AudioTrack.from_file(source) if info["has_audio"] else None
    crop_h, crop_w = info["height"], info["width"]
    if format.even_sides:
        crop_h, crop_w = crop_h - crop_h % 2, crop_w - crop_w % 2
    with VideoWriter(path, fps or info["fps"], format=format, audio=audio, metadata=metadata) as writer:
        for frame in iter_video_frames(source):
            writer.write(frame[:crop_h, :crop_w])
    return Path(path)


@dataclass
class FrameSource:
    """A video to read in order without holding it: a file (path or file object) decoded lazily, or a
    batch already in memory (ComfyUI IMAGE) sliced without copying. Frames come as float32 (H, W, 3)
    in 0..1, windows as (n, H, W, 3); a pass holds at most one window (plus the decoder's own frames).
    """

    count: int
    fps: Fraction
    height: int
    width: int
    _open: Callable[[int], Iterator[torch.Tensor]]
    audio: Optional[AudioTrack] = None
    name: str = "the video"
    path: Optional[Source] = None  # the file it reads, if any
    batch: Optional[torch.Tensor] = None  # the frames it slices, if in memory

    @classmethod
    def from_file(cls, source: Source, count: Optional[int] = None, name: Optional[str] = None) -> "FrameSource":
        info = video_info(source)
        if count is None:
            count = info["frames"] if info["exact_count"] else count_frames(source)
        audio = AudioTrack.from_file(source, seconds=count / info["fps"]) if info["has_audio"] else None
        return cls(count, info["fps"], info["height"], info["width"],
                   lambda start: (f.float().div_(255.0) for f in iter_video_frames(source, start)),
                   audio, name or _name(source), path=source)

    @classmethod
    def from_batch(cls, frames: torch.Tensor, fps: float | Fraction = 8, audio: Optional[AudioTrack] = None,
                   name: str = "the video") -> "FrameSource":
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"{name} must be frames (F, H, W, 3), got {tuple(frames.shape)}")
        fps = Fraction(fps).limit_denominator(1001)
        if audio is not None:
            audio = audio.with_length(frames.shape[0] / fps)
        return cls(int(frames.shape[0]), fps, int(frames.shape[1]), int(frames.shape[2]),
                   lambda start: (frames[i].float() for i in range(start, frames.shape[0])), audio, name,
                   batch=frames)

    @property
    def seconds(self) -> float:
        return float(self.count / self.fps)

    def frames(self, start: int = 0) -> Iterator[torch.Tensor]:
        """Each frame from ``start`` on; a video that turns out shorter than ``count`` is an error."""
        n = start
        for frame in self._open(start):
            if n >= self.count:
                return
            yield frame
            n += 1
        if n < self.count:
            raise InputError(f"{self.name} ended after {n} of its {self.count} frames: the file is incomplete or "
                             f"was changed while being read. Load it again.")

    def windows(self, size: int, start: int = 0) -> Iterator[torch.Tensor]:
        """Consecutive windows of ``size`` frames (the last may be shorter), each a new tensor."""
        if size < 1:
            raise InputError(f"a window holds at least one frame, got {size}")
        frames = self.frames(start)
        while True:
            window = list(itertools.islice(frames, size))
            if not window:
                return
            yield torch.stack(window)
            del window
