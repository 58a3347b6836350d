"""SCuts: scene cuts counted by PySceneDetect's AdaptiveDetector at its default parameters, as the paper.

Frames are fed from memory through a minimal ``scenedetect.VideoStream`` over an iterator, so
PySceneDetect's own ``SceneManager`` does everything it does for a file (its automatic downscaling
to about 256 px wide, the detector calls, the end-of-video processing) with the exact frames we have,
without an mp4 round trip. AdaptiveDetector compares each frame's content change with the average of
its neighbours (2 on each side) and has a minimum scene length of 15 frames, so a cut within 15 frames
of the previous cut or of the start is not counted.

scenedetect (and OpenCV, which it needs) is imported inside the functions: only evaluation needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, Optional

import numpy as np
import torch

from ..errors import InputError

INSTALL_HINT = "SCuts needs PySceneDetect: pip install scenedetect-headless (or scenedetect)"


@dataclass(frozen=True)
class SceneCuts:
    cuts: tuple[int, ...]  # frame index where each new scene starts

    @property
    def count(self) -> int:
        return len(self.cuts)


def _rgb_uint8(frame: torch.Tensor) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise InputError(f"a frame must be (height, width, 3), got {tuple(frame.shape)}")
    frame = frame[..., :3]
    if frame.dtype != torch.uint8:
        frame = frame.float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return frame.cpu().numpy()


def _frame_stream_class():
    from scenedetect import FrameTimecode, VideoStream

    class FrameIteratorStream(VideoStream):
        """A non-seekable VideoStream over (H, W, 3) RGB frames already decoded (given as BGR, as
        OpenCV would)."""

        BACKEND_NAME = "streaming_core_frames"

        def __init__(self, frames: Iterator[torch.Tensor], fps: Fraction, count: Optional[int]):
            self._frames = frames
            self._first = next(frames, None)
            if self._first is None:
                raise InputError("SCuts: the video has no frames")
            self._size = (int(self._first.shape[1]), int(self._first.shape[0]))
            self._fps = Fraction(fps)
            self._count = count
            self._read = 0

        @property
        def path(self) -> str:
            return "<frames in memory>"

        @property
        def name(self) -> str:
            return "frames"

        @property
        def is_seekable(self) -> bool:
            return False

        @property
        def frame_rate(self) -> Fraction:
            return self._fps

        @property
        def duration(self):
            return None if self._count is None else FrameTimecode(self._count, self._fps)

        @property
        def frame_size(self) -> tuple[int, int]:
            return self._size

        @property
        def aspect_ratio(self) -> float:
            return 1.0

        @property
        def position(self):
            return FrameTimecode(max(self._read - 1, 0), self._fps)

        @property
        def position_ms(self) -> float:
            return 1000.0 * max(self._read - 1, 0) / float(self._fps)

        @property
        def frame_number(self) -> int:
            return self._read

        def read(self, decode: bool = True):
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                frame = next(self._frames, None)
            if frame is None:
                return False
            self._read += 1
            if not decode:
                return True
            return np.ascontiguousarray(_rgb_uint8(frame)[..., ::-1])  # RGB -> BGR

        def reset(self) -> None:
            raise NotImplementedError("frames in memory are read once")

        def seek(self, target) -> None:
            raise NotImplementedError("frames in memory are read once")

    return FrameIteratorStream


def unavailable_reason() -> Optional[str]:
    """None when PySceneDetect (and OpenCV) import, else the skip line saying what to install."""
    try:
        import scenedetect  # noqa: F401  (only probing)
    except ImportError as exc:
        return f"SCuts skipped: {INSTALL_HINT} ({exc})"
    return None


def scene_cuts(frames: Iterable[torch.Tensor], fps: float | Fraction = 8, count: Optional[int] = None) -> SceneCuts:
    """Scene cuts of a video given as (H, W, 3) frames (uint8 or float 0..1), with AdaptiveDetector()'s
    defaults. ``fps`` only labels timecodes: the detector's minimum scene length is 15 frames."""
    try:
        from scenedetect import AdaptiveDetector, SceneManager
    except ImportError as exc:
        raise InputError(f"{INSTALL_HINT} ({exc})") from exc
    stream = _frame_stream_class()(iter(frames), Fraction(fps).limit_denominator(1001), count)
    manager = SceneManager()
    manager.add_detector(AdaptiveDetector())
    manager.detect_scenes(video=stream, show_progress=False)
    scenes = manager.get_scene_list(start_in_scene=True)
    return SceneCuts(tuple(int(start.frame_num) for start, _ in scenes[1:]))
