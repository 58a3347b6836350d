"""The official generation numbers of each product, each written once with where it comes from
(``shared/specs/streamingt2v_spec.md``, ``shared/specs/stream_diffvsr_spec.md``). The pipelines'
settings objects, the CLI's defaults and help, the nodes' defaults and tooltips and the benchmarks
read them here; the loaders never do (they read every architecture number from tensor shapes).

A base module: it imports nothing, so any floor may read it (the nodes too, at ComfyUI start-up).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InitialChunkFacts:
    """The first chunk: diffusers ``TextToVideoSDPipeline`` on text-to-video-ms-1.7b (spec §0, row 1)."""

    steps: int = 50  # hard default ``t=50``; the CLI's --num_steps is not passed
    guidance: float = 9.0  # diffusers' default; the official call does not set it
    size: int = 256  # 16 frames at 256x256


@dataclass(frozen=True)
class ExtensionFacts:
    """One CAM extension step: ``VideoLDM.predict_step`` (spec §0 row 2, §4.2, §4.3)."""

    steps: int = 50  # DDIM, num_inference_steps
    eta: float = 1.0
    guidance: float = 7.5  # one CFG scale over text + anchor together
    seed: int = 33  # fixed in predict_step


@dataclass(frozen=True)
class RefineFacts:
    """The enhancer: MS-Vid2Vid-XL driven by ``video2video_randomized`` (spec §0 row 3, "enhancement")."""

    chunk: int = 24  # ``VideoToVideo.__init__`` chunk_size
    overlap: int = 8  # overlap_size
    strength: float = 0.6  # SDEdit from t=599 of 1000 (``total_noise_levels=600``)
    start_timestep: int = 599  # what the strength above re-noises to
    steps: int = 30  # DPM++(2M) SDE iterations
    guidance: float = 7.5  # CFG (rescaled by 0.2, a property of the model's config)


@dataclass(frozen=True)
class UpscaleFacts:
    """Stream-DiffVSR's inference script (stream_diffvsr_spec.md: hard-coded settings)."""

    steps: int = 4  # the distilled UNet's t = 999, 749, 499, 249 (trailing spacing)


@dataclass(frozen=True)
class VideoFacts:
    """The written video: ``VideoLDM.predict_step`` saves the mp4 at ``frame_rate`` 8 (spec §4.1, step 6);
    the model itself has no fps input (fps conditioning is off)."""

    fps: float = 8.0


INITIAL_CHUNK = InitialChunkFacts()
EXTENSION = ExtensionFacts()
REFINE = RefineFacts()
UPSCALE = UpscaleFacts()
VIDEO = VideoFacts()
