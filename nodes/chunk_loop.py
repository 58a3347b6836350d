"""ST2V Chunk Loop: the CAM Extender repeated to a target length, resumable across queue runs."""

from __future__ import annotations

import logging

from ..streaming_core.official import EXTENSION
from ..streaming_core.pipelines.long_video import ExtensionSettings
from ..streaming_core.pipelines.resumable_loop import (AUTO, ResumePolicy, auto_run_name, check_run_name,
                                                       prompts_from_lines, run_chunk_loop)
from ..streaming_core.pipelines.run_folder import RunFolder
from ..streaming_core.validation import MAX_FRAMES
from . import host
from .common_inputs import (IMAGE_ONLY_IF_USED, STREAMED_VIDEO_TOOLTIP, UNIQUE_ID_AND_PROMPT, fps_input,
                            guidance_inputs, negative_input, prompt_input, seed_input, steps_input)
from .generate import ANCHOR_TOOLTIP, MODEL_TOOLTIP, extension_need

RUNS_FOLDER = "streamingt2v_runs"
REFUSAL_HINT = "pick another run name, or delete the folder to start over"
log = logging.getLogger(__name__)


def run_folder(name: str, model, video, settings, anchor):
    """The resume folder of this run under ComfyUI's output directory (None: no resume state)."""
    name = (name or "").strip()
    if not name:
        return None
    name = auto_run_name(model, video, settings, anchor) if name == AUTO else check_run_name(name)
    return RunFolder(host.output_subfolder(RUNS_FOLDER, name))


class ST2VChunkLoop:
    DESCRIPTION = (
        "Extends a video to a target length by repeating the CAM Extender: every chunk conditions on the last 8 "
        "frames and the anchor, and adds 8 frames (the paper shows 1200). One prompt per line gives one per chunk "
        "(the last repeats). The state is saved after every chunk under output/streamingt2v_runs/, so a run stopped "
        "by Cancel, an error or a closed ComfyUI continues where it stopped when the same graph is queued again "
        "(keep the seeds fixed). Finished frames leave the GPU as each chunk ends.")
    CATEGORY = "StreamingT2V"
    FUNCTION = "loop"
    RETURN_TYPES = ("IMAGE", "VIDEO")
    RETURN_NAMES = ("video", "streamed_video")
    OUTPUT_TOOLTIPS = ("The whole video: the start frames followed by the generated ones, `frames` in all."
                       + IMAGE_ONLY_IF_USED, STREAMED_VIDEO_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "st2v_model": ("ST2V_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "video": ("IMAGE", {"tooltip": "The start: the Initial Chunk, or any video of at least 8 frames "
                                               "(sides multiples of 8)."}),
                "prompts": prompt_input("One prompt, or one per line: line 1 for the first generated chunk, line 2 "
                                        "for the next, ...; the last line repeats."),
                "negative_prompt": negative_input(),
                "frames": ("INT", {"default": 120, "min": 9, "max": MAX_FRAMES,
                                   "tooltip": "Length of the whole video in frames, the start included (8 new frames "
                                              "per chunk; the last chunk is cut to fit)."}),
                "seed": seed_input("Seed of every chunk's noise (chunk k draws from (seed, k), so a longer video "
                                   "starts with the shorter one). Keep it fixed to resume."),
                "steps": steps_input(EXTENSION.steps, f"DDIM steps per chunk (official: {EXTENSION.steps})."),
                **guidance_inputs(),
                "run_name": ("STRING", {
                    "default": AUTO,
                    "tooltip": "Where the resume state goes (output/streamingt2v_runs/<name>). auto: named after the "
                               "settings, so queueing the same graph again resumes and any change starts afresh. A "
                               "name of your own continues only the same run (other settings are refused). Empty: "
                               "no resume state."}),
                "keep_state": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Keep the resume state after a finished run, so raising frames later continues the "
                               "same video instead of starting over. Off: the state is deleted when the run ends."}),
            },
            "optional": {"anchor": ("ST2V_ANCHOR", {"tooltip": ANCHOR_TOOLTIP}), "fps": fps_input()},
            "hidden": UNIQUE_ID_AND_PROMPT,
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        return host.output_generation(cls.__name__, unique_id)

    def loop(self, st2v_model, video, prompts, negative_prompt, frames, seed, steps, text_guidance, anchor_guidance,
             run_name, keep_state, anchor=None, fps=8.0, unique_id=None, queued_graph=None):
        start = host.image_to_frames(video, "video")
        settings = ExtensionSettings(prompts_from_lines(prompts), negative_prompt, seed, steps,
                                     guidance=text_guidance, anchor_guidance=anchor_guidance)
        (st2v,) = host.load_for_use([st2v_model], memory_required=extension_need(st2v_model, start))
        folder = run_folder(run_name, st2v, start, settings, anchor)
        messages = []

        def on_resume(message: str) -> None:
            messages.append(message)
            log.info("ST2V Chunk Loop: %s", message)
            host.show_text(message, unique_id)

        want_image = host.output_used(queued_graph, unique_id, 0)
        streamed = None
        policy = ResumePolicy(keep_state=keep_state, refusal_hint=REFUSAL_HINT, on_resume=on_resume)
        common = dict(anchor=anchor, on_step=host.progress_callback(steps, unique_id),
                      output_device=host.intermediate_device(), keep_frames=want_image)
        if host.output_used(queued_graph, unique_id, 1):
            with host.HandoffWriter(fps, "ST2V Chunk Loop") as out:
                result = run_chunk_loop(st2v, start, frames, settings, folder, policy, on_frames=out.write, **common)
                streamed = out.finish()
            host.remember_output(type(self).__name__, unique_id, streamed)
        else:
            result = run_chunk_loop(st2v, start, frames, settings, folder, policy, **common)
        if result.resumed_from:
            log.info("ST2V Chunk Loop: resumed run %s from frame %d; the video has %d frames",
                     folder.path.name, result.resumed_from, frames)
        if messages:  # shown again once the run is done (the progress text may have been replaced meanwhile)
            host.show_text(messages[-1], unique_id)
        return {"ui": {"text": messages},
                "result": (host.frames_to_image(result.video) if want_image else None, streamed)}


NODE_CLASS_MAPPINGS = {"ST2VChunkLoop": ST2VChunkLoop}
NODE_DISPLAY_NAME_MAPPINGS = {"ST2VChunkLoop": "ST2V Chunk Loop (long video)"}
