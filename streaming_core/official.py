"""The official StreamingT2V generation numbers, each written once with where it comes from
(``shared/specs/streamingt2v_spec.md``). Pipeline defaults read them here; the loaders never do
(they read every architecture number from tensor shapes).

A base module: it imports nothing, so any floor may read it.
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


INITIAL_CHUNK = InitialChunkFacts()
EXTENSION = ExtensionFacts()
