"""Stream-DiffVSR Upscale: causal x4 video super-resolution, frame by frame, resumable across queue runs.

The core pipeline is imported inside ``upscale``: its model code imports diffusers, which importing
the pack (ComfyUI start-up) must not pay for.
"""

from __future__ import annotations

from . import host
from .common_inputs import (IMAGE_ONLY_IF_USED, STREAMED_VIDEO_TOOLTIP, UNIQUE_ID_AND_PROMPT, fps_input, seed_input,
                            video_input)

FLOW_TILES = ("auto", "off", "256", "384", "512", "768", "1024")


class SDVSRUpscale:
    DESCRIPTION = (
        "Upscales a video 4x with Stream-DiffVSR: one frame at a time, each guided by the previous output warped "
        "with optical flow (past frames only), 4 denoising steps per frame. Pass the state output into the next "
        "Upscale's state input to continue the same video in another queue run without a cold start (split a long "
        "video into parts with Image From Batch).")
    CATEGORY = "StreamingT2V"
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE", "SDVSR_STATE", "VIDEO")
    RETURN_NAMES = ("video", "state", "streamed_video")
    OUTPUT_TOOLTIPS = ("The upscaled frames (4x width and height; sides floored to multiples of 4 first)."
                       + IMAGE_ONLY_IF_USED,
                       "The state after the last frame: connect it to the next part's Upscale.",
                       STREAMED_VIDEO_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sdvsr_model": ("SDVSR_MODEL", {"tooltip": "Stream-DiffVSR from the Stream-DiffVSR Loader."}),
                "video": video_input("Low-resolution frames, in order (one video; all one size)."),
                "seed": seed_input("Seed of the per-frame noise. Ignored when a state is connected (it carries "
                                   "its own noise stream)."),
                "flow_tile": (list(FLOW_TILES), {
                    "default": "auto",
                    "tooltip": "Optical flow (RAFT) in tiles of this many output pixels. off: the whole frame at once "
                               "(official; memory grows fast with size). auto: tiles only when the whole frame would "
                               "need more than about 6 GB."}),
            },
            "optional": {
                "state": ("SDVSR_STATE", {"tooltip": "The state output of the Upscale that handled the previous "
                                                     "frames of this video. Not connected: a new video."}),
                "fps": fps_input(),
            },
            "hidden": UNIQUE_ID_AND_PROMPT,
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        return host.output_generation(cls.__name__, unique_id)

    def upscale(self, sdvsr_model, video, seed, flow_tile, state=None, fps=8.0, unique_id=None, queued_graph=None):
        from ..streaming_core.pipelines.memory_estimates import upscale_frame_for
        from ..streaming_core.pipelines.upscale import UpscaleSettings, upscale_stream

        source = host.video_source(video, "video", fps)
        settings = UpscaleSettings(seed=seed, flow_tile=flow_tile)  # checked before the models move to the device
        tile = settings.flow_tile
        need = upscale_frame_for(host.bundle_of(sdvsr_model), height=source.height, width=source.width,
                                 flow_tile=tile if isinstance(tile, int) else None)
        models = host.load_bundle_for_use(sdvsr_model, memory_required=need)
        stream = upscale_stream(models, source.frames(), state, settings,
                                on_step=host.progress_callback(source.count * settings.steps, unique_id),
                                total_frames=source.count, output_device=host.intermediate_device())
        image, streamed = host.deliver_frames(stream, source.count, queued_graph, unique_id, image_slot=0,
                                              video_slot=2, node=type(self).__name__,
                                              made_by="Stream-DiffVSR Upscale", fps=source.fps, audio=source.audio)
        return (image, stream.state, streamed)


NODE_CLASS_MAPPINGS = {"SDVSRUpscale": SDVSRUpscale}
NODE_DISPLAY_NAME_MAPPINGS = {"SDVSRUpscale": "ST2V Stream-DiffVSR Upscale (4x)"}
