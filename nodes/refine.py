"""ST2V Randomized Blend Refiner: the paper's third stage (high-resolution SDEdit in blended chunks).

The core refines as a wavefront (``refine_stream``): the input is read a window at a time, frames are
final long before the video ends and go straight into the VIDEO output's file, and the sampler's
bounded state is saved under ComfyUI's output folder (``streamingt2v_refine/<hash of video, model and
settings>``), so queueing the same graph again after Cancel, an error or a restart continues. The
official Brownian noise (``sde_noise="brownian"``) is one whole-video draw: lock-step, no state.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from ..streaming_core.models.enhancer import NativeResolution
from ..streaming_core.official import REFINE
from ..streaming_core.pipelines.refine import (FrameSource, RefineSettings, check_frame_count, refine_state_name,
                                               refine_stream)
from ..streaming_core.pipelines.refine_state import digest_file, digest_frames
from ..streaming_core.sampling.blend import BLEND_MODES
from ..streaming_core.sampling.sdedit import SDE_NOISES
from . import host
from .common_inputs import (IMAGE_ONLY_IF_USED, STREAMED_VIDEO_TOOLTIP, UNIQUE_ID_AND_PROMPT, fps_input,
                            negative_input, prompt_input, scale_input, seed_input, steps_input, video_input)

STATE_FOLDER = "streamingt2v_refine"  # resume states under ComfyUI's output folder, one per video and settings
READ_FRAMES = 16  # frames decoded at a time from a VIDEO input
log = logging.getLogger(__name__)


def refine_source(video, fps) -> tuple[FrameSource, object]:
    """The refiner's lazy frame source over an IMAGE or VIDEO input, and the host's source (rate, sound)."""
    source = host.video_source(video, "video", fps)
    if source.batch is not None:
        batch = source.batch
        fingerprint = digest_frames(batch[a:a + READ_FRAMES] for a in range(0, batch.shape[0], READ_FRAMES))
    elif isinstance(source.path, (str, os.PathLike)):
        fingerprint = digest_file(source.path)
    else:  # an in-memory file (a VIDEO from an API node): hash its pixels, one window at a time
        fingerprint = digest_frames(source.windows(READ_FRAMES))
    core = FrameSource(source.count, source.height, source.width, source.fps, fingerprint,
                       lambda start: source.windows(READ_FRAMES, start))
    return core, source


class ST2VRandomizedBlendRefiner:
    DESCRIPTION = (
        "Enhances a long low-resolution video with a short high-resolution video model (MS-Vid2Vid-XL, or a "
        "zeroscope-style UNet3D): SDEdit of overlapping chunks that share one noise tensor, with a new random cut "
        "inside every overlap at every step (randomized blending, paper Sec. 4.3), so chunks join without seams. "
        "The modes shared_noise and independent are the paper's baselines, for comparison.")
    CATEGORY = "StreamingT2V"
    FUNCTION = "refine"
    RETURN_TYPES = ("IMAGE", "VIDEO")
    RETURN_NAMES = ("video", "streamed_video")
    OUTPUT_TOOLTIPS = ("The enhanced video: same frames, at the enhancer's resolution (720 px for MS-Vid2Vid-XL)."
                       + IMAGE_ONLY_IF_USED, STREAMED_VIDEO_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "enhancer": ("ST2V_ENHANCER", {"tooltip": "The enhancer from the Enhancer Loader."}),
                "video": video_input("The video to enhance (at least one chunk of frames)."),
                "prompt": prompt_input("What the video shows (the generation prompt works well)."),
                "negative_prompt": negative_input(),
                "mode": (list(BLEND_MODES), {
                    "default": "randomized",
                    "tooltip": "randomized: shared noise and a new random cut per overlap per step (the paper). "
                               "shared_noise: every chunk on its own from the same noise, joined in the middle of each "
                               "overlap. independent: every chunk on its own with its own noise, joined the same "
                               "way (visible seams)."}),
                "chunk": ("INT", {"default": REFINE.chunk, "min": 2, "max": 1024,
                                  "tooltip": f"Frames per chunk (official: {REFINE.chunk})."}),
                "overlap": ("INT", {"default": REFINE.overlap, "min": 0, "max": 1023,
                                    "tooltip": f"Frames shared by neighbouring chunks (official: {REFINE.overlap}); "
                                               f"smaller than chunk."}),
                "strength": ("FLOAT", {"default": REFINE.strength, "min": 0.01, "max": 1.0, "step": 0.01,
                                       "tooltip": f"How far the video is re-noised (official: {REFINE.strength}, i.e. "
                                                  f"t={REFINE.start_timestep} of 1000): higher changes more."}),
                "steps": steps_input(REFINE.steps, f"Solver steps over the re-noised range (official: {REFINE.steps})."),
                "guidance": scale_input(REFINE.guidance,
                                        f"Classifier-free guidance scale (official: {REFINE.guidance})."),
                "seed": seed_input("Seed of every random draw: the shared noise, the SDE noise of each step, the blend cuts "
                                   "and the VAE sample."),
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                  "tooltip": "Canvas width; 0: the enhancer's own (1280 for MS-Vid2Vid-XL, 1024 for "
                                             "zeroscope_v2_XL). Frames are fitted inside, aspect kept."}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                   "tooltip": "Canvas height; 0: the enhancer's own (720 for MS-Vid2Vid-XL, 576 "
                                              "for zeroscope_v2_XL)."}),
                "sde_noise": (list(SDE_NOISES), {
                    "default": "gaussian",
                    "tooltip": "gaussian: a fresh draw per step over the whole video (the same statistics as the "
                               "official noise at a fixed cost; overlaps still share it). brownian: the official "
                               "Brownian-tree noise, bit-identical to the official code but slow and memory-hungry "
                               "for long videos (about 1 s and 12 MB of CPU per frame; it holds the whole video "
                               "and cannot resume)."}),
            },
            "optional": {"fps": fps_input()},
            "hidden": UNIQUE_ID_AND_PROMPT,
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        return host.output_generation(cls.__name__, unique_id)

    def refine(self, enhancer, video, prompt, negative_prompt, mode, chunk, overlap, strength, steps, guidance, seed,
               width, height, sde_noise, fps=8.0, unique_id=None, queued_graph=None):
        graph = queued_graph
        source, host_source = refine_source(video, fps)
        # the same checks as the CLI and refine_stream, before the enhancer is moved to the device: a NaN guidance
        # from a Primitive would otherwise make every latent NaN and save a black video
        settings = RefineSettings(mode, chunk, overlap, strength, steps, guidance, seed, sde_noise=sde_noise,
                                  resolution=NativeResolution(width, height) if width and height else None)
        check_frame_count(source.num_frames, settings)
        from ..streaming_core.pipelines.memory_estimates import refine_window_for  # imports RAFT's module

        native = host.bundle_of(enhancer).resolution
        settings = replace(settings, resolution=NativeResolution(width or native.width, height or native.height,
                                                                 native.pad))
        need = refine_window_for(host.bundle_of(enhancer), frames=chunk, height=settings.resolution.height,
                                 width=settings.resolution.width)
        model = host.load_bundle_for_use(enhancer, memory_required=need)  # after the checks: a wrong setting loads nothing
        state_dir = None
        if sde_noise != "brownian":  # the official replay is lock-step and keeps no state
            state_dir = host.output_subfolder(STATE_FOLDER, refine_state_name(model, source, prompt, negative_prompt,
                                                                              settings))
            if state_dir.exists():
                log.info("ST2V Randomized Blend Refiner: resuming from the saved state %s", state_dir.name)
        parts = refine_stream(model, source, prompt, negative_prompt, settings,
                              on_step=host.progress_callback(steps, unique_id), state_dir=state_dir)
        return host.deliver_frames(parts, source.num_frames, graph, unique_id, image_slot=0, video_slot=1,
                                   node=type(self).__name__, made_by="ST2V Randomized Blend Refiner",
                                   fps=host_source.fps, audio=host_source.audio)


NODE_CLASS_MAPPINGS = {"ST2VRandomizedBlendRefiner": ST2VRandomizedBlendRefiner}
NODE_DISPLAY_NAME_MAPPINGS = {"ST2VRandomizedBlendRefiner": "ST2V Randomized Blend Refiner"}
