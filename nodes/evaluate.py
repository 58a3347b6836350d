"""ST2V Evaluate Video: the paper's metrics (MAWE, SCuts, CLIP score) and the seam measures of a video.

The core's metrics are imported inside ``evaluate``: they need torchvision and scenedetect, which importing the
pack (ComfyUI start-up) must not pay for.
"""

from __future__ import annotations

from pathlib import Path

from ..streaming_core.checkpoints.layouts import MSVID2VID_FILES, RAFT_FILE_NAME
from ..streaming_core.official import REFINE
from . import host
from .common_inputs import UNIQUE_ID, video_input

RAFT_FILE = RAFT_FILE_NAME  # the layout table's names (the menus' defaults)
OPEN_CLIP_FILE = MSVID2VID_FILES["text"]
NONE, AUTO = "none", "auto"
SDVSR, ST2V, CLIP_VISION = "stream_diffvsr", "streamingt2v", "clip_vision"
CHUNK_CHOICES = ("st2v", "refine", "none")


def _menu(first: str, kinds: tuple[str, ...], preferred: str) -> tuple[list[str], str]:
    files = [f"{kind}/{name}" for kind in kinds for name in host.list_files(kind)]
    default = next((f for f in files if f.rsplit("/", 1)[-1] == preferred), first)
    return [first] + files, default


def _resolve(pick: str):
    if pick in (NONE, AUTO):
        return None
    kind, name = pick.split("/", 1)
    return Path(host.full_path(kind, name))


class ST2VEvaluateVideo:
    DESCRIPTION = (
        "Measures a video with the StreamingT2V paper's numbers: MAWE (motion-aware warp error, lower = consistent "
        "motion), SCuts (scene cuts found by PySceneDetect, lower = fewer jumps) and the CLIP score (how well the "
        "frames match the prompt), plus the seam score and flow smoothness at chunk boundaries. Outputs a table, "
        "the full report as JSON and a plot of the per-frame curves with the chunk boundaries marked. A measure "
        "whose weights are missing is skipped with a line naming the file to add.")
    CATEGORY = "StreamingT2V"
    FUNCTION = "evaluate"
    RETURN_TYPES = ("STRING", "STRING", "IMAGE")
    RETURN_NAMES = ("report", "json", "plot")
    OUTPUT_TOOLTIPS = ("The numbers as a table (and any skip lines).",
                       "The full report as JSON: numbers, per-transition curves, weights used.",
                       "Per-transition curves (warp error, flow magnitude, frame difference); grey: chunk overlaps.")

    @classmethod
    def INPUT_TYPES(cls):
        rafts, raft_default = _menu(NONE, (SDVSR,), RAFT_FILE)
        clips, clip_default = _menu(NONE, (ST2V, CLIP_VISION), OPEN_CLIP_FILE)
        images, _ = _menu(AUTO, (CLIP_VISION, ST2V), "")
        return {
            "required": {
                "video": video_input("The frames to measure, in order (one video, at least 2 frames). No measure "
                                     "holds the whole video: each reads it once more from the start (up to 4 "
                                     "passes), so a VIDEO file is decoded up to 4 times."),
                "prompt": ("STRING", {"default": "", "multiline": True,
                                      "tooltip": "The prompt the video was made from, for the CLIP score. Empty: "
                                                 "no CLIP score."}),
                "raft": (rafts, {"default": raft_default,
                                 "tooltip": f"RAFT-large weights ({RAFT_FILE}, in models/stream_diffvsr/) for MAWE. "
                                            "none: no MAWE."}),
                "clip": (clips, {"default": clip_default,
                                 "tooltip": f"The OpenCLIP ViT-H/14 file with the text tower ({OPEN_CLIP_FILE}, "
                                            "MS-Vid2Vid-XL's, in models/streamingt2v/). none: no CLIP score."}),
                "clip_image": (images, {"default": AUTO,
                                        "tooltip": "The CLIP image tower. auto: the clip file's own (the full "
                                                   "open_clip file has both); else a ViT-H clip_vision file."}),
                "chunks": (list(CHUNK_CHOICES), {
                    "default": "st2v",
                    "tooltip": "How the video was made, for the seam measures: st2v = 16-frame chunks with 8 "
                               f"conditioning frames (Chunk Loop), refine = windows of {REFINE.chunk} overlapping by "
                               f"{REFINE.overlap} (the refiner), none = no seam measures."}),
                "mawe_size": ("INT", {"default": 720, "min": 32, "max": 2048, "step": 8,
                                      "tooltip": "Frames are resized to this square for MAWE (official: 720)."}),
            },
            "hidden": UNIQUE_ID,
        }

    def evaluate(self, video, prompt, raft, clip, clip_image, chunks, mawe_size, unique_id=None):
        from ..streaming_core.metrics.evaluate import (CHUNK_PRESETS, EvalSettings, evaluate_video, format_table,
                                                       progress_units, report_json)
        from ..streaming_core.metrics.plot import image_batch, render_curves
        from ..streaming_core.metrics.weights import load_eval_models

        source = host.video_source(video, "video")  # an IMAGE batch counts as 8 fps (only labels SCut timecodes)
        device = host.torch_device()
        clip_path = _resolve(clip)
        models = load_eval_models(_resolve(raft), clip_path, _resolve(clip_image), prompt, device,
                                  raft_how=f"pick it in 'raft' (put it into models/{SDVSR}/)",
                                  clip_how=f"pick it in 'clip' (put it into models/{ST2V}/)")
        chunk, overlap = CHUNK_PRESETS.get(chunks, (None, 0))
        settings = EvalSettings(prompt=prompt or None, chunk=chunk, overlap=overlap, mawe_size=mawe_size,
                                device=str(device))
        report = evaluate_video(source.frames, "video", models, settings, fps=source.fps,
                                on_step=host.progress_callback(progress_units(source.count, models, settings),
                                                               unique_id))
        plot = image_batch(render_curves([report]))
        return (format_table([report]), report_json([report], settings), host.frames_to_image(plot))


NODE_CLASS_MAPPINGS = {"ST2VEvaluateVideo": ST2VEvaluateVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"ST2VEvaluateVideo": "ST2V Evaluate Video"}
