"""Input definitions several nodes share, so the same setting reads the same everywhere."""

from __future__ import annotations

from ..streaming_core.official import EXTENSION, VIDEO
from ..streaming_core.validation import MAX_SEED  # the core's seeds are int64: one ceiling for CLI, API and nodes


def seed_input(tooltip: str):
    return ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True, "tooltip": tooltip})


def steps_input(default: int, tooltip: str):
    return ("INT", {"default": default, "min": 1, "max": 1000, "tooltip": tooltip})


def scale_input(default: float, tooltip: str):
    return ("FLOAT", {"default": default, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": tooltip})


def prompt_input(tooltip: str, default: str = ""):
    return ("STRING", {"default": default, "multiline": True, "tooltip": tooltip})


def negative_input():
    return ("STRING", {"default": "", "multiline": True,
                       "tooltip": "What the video should not show. Empty is the official setting."})


def guidance_inputs():
    """The CAM steps' two guidance scales (paper eq. 12); equal values take the official joint form."""
    return {
        "text_guidance": scale_input(EXTENSION.guidance,
                                     "How strongly the chunk follows the prompt (classifier-free guidance). With "
                                     f"anchor_guidance equal to it, one joint scale as officially ({EXTENSION.guidance}), "
                                     "two network passes per step."),
        "anchor_guidance": scale_input(EXTENSION.guidance, "How strongly the chunk keeps the anchor frame's appearance (APM). A "
                                            "value different from text_guidance uses the paper's eq. 12 with "
                                            "separate scales: three passes per step instead of two."),
    }


UNIQUE_ID = {"unique_id": "UNIQUE_ID"}
# The graph as queued, to see which outputs anything takes (a whole-video IMAGE is only made when used).
UNIQUE_ID_AND_PROMPT = {"unique_id": "UNIQUE_ID", "queued_graph": "PROMPT"}

VIDEO_IN = "IMAGE,VIDEO"  # either: an IMAGE batch (short clips) or a VIDEO (read lazily, any length)


def video_input(tooltip: str):
    return (VIDEO_IN, {"tooltip": tooltip + " An IMAGE batch or a VIDEO: a VIDEO file is read a few frames at "
                                            "a time, so any length fits in memory."})


def fps_input():
    return ("FLOAT", {"default": VIDEO.fps, "min": 1.0, "max": 240.0, "step": 1.0,
                      "tooltip": "Frame rate of the VIDEO output when the input is an IMAGE batch (a VIDEO input "
                                 "keeps its own rate and sound)."})


STREAMED_VIDEO_TOOLTIP = ("The same video as a VIDEO backed by a lossless file written as frames finish: connect "
                          "it to Save Video or to the next node of the pack; memory does not grow with length.")
IMAGE_ONLY_IF_USED = " Assembled in memory only when something takes it (use the VIDEO output for long videos)."
