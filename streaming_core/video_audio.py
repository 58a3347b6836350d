"""The sound of a video, carried from an input to an output while the frames are re-made.

The refiner and the upscaler keep the frame count and rate, so an input's audio belongs to the
output unchanged. It is written as AAC (what an mp4 holds everywhere): AAC input is copied packet by
packet; any other codec, or a waveform (ComfyUI's AUDIO), is encoded. Audio is small next to
frames (AAC at 128 kbit/s is 16 kB a second), so it is muxed in one go when the output opens.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Union

import numpy as np
import torch

Source = Union[str, os.PathLike, io.IOBase]
AAC_BITRATE = 128_000


@dataclass(frozen=True)
class AudioTrack:
    """Audio to put into an output: the audio stream of a video file, or a waveform tensor."""

    source: Optional[Source] = None  # a video/audio file (path or file object) with an audio stream
    waveform: Optional[torch.Tensor] = None  # (channels, samples) or (1, channels, samples) float
    sample_rate: int = 0
    seconds: Optional[float] = None  # cut at this length (the video's); None: all of it

    @classmethod
    def from_file(cls, source: Source, seconds: Optional[float] = None) -> Optional["AudioTrack"]:
        """The file's audio, or None when it has none (or cannot be read: the video has no sound then)."""
        av = _av()
        _rewind(source)
        try:
            with av.open(_openable(source)) as container:
                if not container.streams.audio:
                    return None
        except (av.error.FFmpegError, OSError):
            return None
        return cls(source=source, seconds=seconds)

    def with_length(self, seconds: Optional[float]) -> "AudioTrack":
        return AudioTrack(self.source, self.waveform, self.sample_rate, seconds)


def _av():
    import av  # PyAV is a requirement; imported here like in video_io (ComfyUI ships it too)

    return av


def _openable(source: Source):
    return str(source) if isinstance(source, (str, os.PathLike)) else source


def _rewind(source: Source) -> None:
    if hasattr(source, "seek"):
        source.seek(0)


class AudioMuxer:
    """Adds one AAC stream to an output container and writes the whole track into it."""

    def __init__(self, container, track: AudioTrack):
        self.container = container
        self.track = track
        self._copy_from = None
        av = _av()
        if track.source is not None:
            _rewind(track.source)
            self._input = av.open(_openable(track.source))
            in_stream = self._input.streams.audio[0]
            if in_stream.codec_context.name == "aac" and track.seconds is None:
                self.stream = container.add_stream_from_template(in_stream)
                self._copy_from = in_stream
            else:
                rate = in_stream.codec_context.sample_rate or 44100
                self.stream = container.add_stream("aac", rate=rate)
                self.stream.bit_rate = AAC_BITRATE
                layout = in_stream.codec_context.layout.name if in_stream.codec_context.layout else "stereo"
                self.stream.layout = layout if layout in ("mono", "stereo") else "stereo"
        else:
            self._input = None
            self.stream = container.add_stream("aac", rate=int(track.sample_rate))
            self.stream.bit_rate = AAC_BITRATE
            self.stream.layout = "mono" if self._waveform().shape[0] == 1 else "stereo"

    def _waveform(self) -> torch.Tensor:
        wave = self.track.waveform
        wave = wave[0] if wave.ndim == 3 else wave
        return wave[:2].float().cpu()

    def write(self) -> None:
        """Mux every audio packet (call once, before or between video packets)."""
        try:
            if self._copy_from is not None:
                for packet in self._input.demux(self._copy_from):
                    if packet.dts is None:
                        continue
                    packet.stream = self.stream
                    self.container.mux(packet)
                return
            for frame in self._frames():
                for packet in self.stream.encode(frame):
                    self.container.mux(packet)
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            if self._input is not None:
                self._input.close()
                self._input = None

    def _frames(self):
        av = _av()
        ctx = self.stream.codec_context
        resampler = av.AudioResampler(format="fltp", layout=self.stream.layout.name, rate=ctx.sample_rate)
        limit = None if self.track.seconds is None else int(round(self.track.seconds * ctx.sample_rate))
        sent = 0
        for frame in self._source_frames():
            frame.pts = None
            for out in resampler.resample(frame):
                if limit is not None:
                    if sent >= limit:
                        return
                    if sent + out.samples > limit:
                        array = out.to_ndarray()[:, :limit - sent]
                        out = _audio_frame(array, self.stream.layout.name, ctx.sample_rate)
                out.pts = sent
                out.time_base = Fraction(1, ctx.sample_rate)
                sent += out.samples
                yield out

    def _source_frames(self):
        if self._input is not None:
            yield from self._input.decode(audio=0)
            return
        wave = self._waveform()
        rate = int(self.track.sample_rate)
        step = rate  # one second per frame handed to the resampler
        for start in range(0, wave.shape[1], step):
            part = wave[:, start:start + step].contiguous().numpy()
            yield _audio_frame(part, "mono" if part.shape[0] == 1 else "stereo", rate)


def _audio_frame(array, layout: str, rate: int):
    """A planar float frame from (channels, samples)."""
    av = _av()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    return frame
