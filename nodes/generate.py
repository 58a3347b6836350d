"""The generation nodes: Initial Chunk, Anchor APM Encoder, CAM Extender (one autoregressive step)."""

from __future__ import annotations

import torch

from ..streaming_core.official import EXTENSION, INITIAL_CHUNK as FIRST
from ..streaming_core.pipelines.anchor_choice import encode_anchor_frame
from ..streaming_core.pipelines.initial_chunk import InitialChunkSettings, generate_initial_chunk
from ..streaming_core.pipelines.long_video import ExtensionSettings, extend_one_chunk
from . import host
from .common_inputs import (UNIQUE_ID, guidance_inputs, negative_input, prompt_input, scale_input, seed_input,
                            steps_input)

CATEGORY = "StreamingT2V"
MODEL_TOOLTIP = "StreamingT2V from the StreamingT2V Loader."
ANCHOR_TOOLTIP = ("Appearance anchor from the Anchor APM Encoder. Not connected: frame 0 of the video, as "
                  "officially.")



def extension_need(st2v_model, frames: torch.Tensor) -> int:
    """Bytes one extension step needs beside the weights, at the size of ``frames`` (F, H, W, 3)."""
    # Imported here, as the estimators of the other nodes: their module imports RAFT's (torchvision),
    # which the pack does not load at ComfyUI start-up.
    from ..streaming_core.pipelines.memory_estimates import extension_chunk_for

    return extension_chunk_for(host.core_model(st2v_model), height=frames.shape[1], width=frames.shape[2])

class ST2VInitialChunk:
    DESCRIPTION = (
        "Makes the first 16 frames of a long video from text with the stock ModelScope text-to-video UNet "
        "(DPM-Solver++, as officially), using StreamingT2V's text encoder and VAE. Any other IMAGE batch (a real "
        "video, AnimateDiff, SVD, Wan...) can take its place as the start of the Chunk Loop.")
    CATEGORY = CATEGORY
    FUNCTION = "generate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The first chunk: frames x height x width RGB images.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "st2v_model": ("ST2V_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "base_model": ("ST2V_BASE", {"tooltip": "The stock ModelScope UNet from the ModelScope T2V Loader."}),
                "prompt": prompt_input("What the video shows."),
                "negative_prompt": negative_input(),
                "seed": seed_input("Seed of the noise. Keep it fixed to resume a long run after an interruption."),
                "steps": steps_input(FIRST.steps, f"Denoising steps (official: {FIRST.steps})."),
                "guidance": scale_input(FIRST.guidance,
                                        f"Classifier-free guidance scale (official: {FIRST.guidance})."),
                "width": ("INT", {"default": FIRST.size, "min": 64, "max": 4096, "step": 8,
                                  "tooltip": f"Frame width in pixels, a multiple of 8 (trained at {FIRST.size})."}),
                "height": ("INT", {"default": FIRST.size, "min": 64, "max": 4096, "step": 8,
                                   "tooltip": f"Frame height in pixels, a multiple of 8 (trained at {FIRST.size})."}),
                "frames": ("INT", {"default": 16, "min": 8, "max": 128,
                                   "tooltip": "Frames of the chunk (the model makes 16; the extensions condition on "
                                              "its last 8)."}),
            },
            "hidden": UNIQUE_ID,
        }

    def generate(self, st2v_model, base_model, prompt, negative_prompt, seed, steps, guidance, width, height, frames,
                 unique_id=None):
        from ..streaming_core.pipelines.memory_estimates import initial_chunk_for

        settings = InitialChunkSettings(steps, guidance, height=height, width=width, frames=frames)
        need = initial_chunk_for(host.core_model(base_model), host.core_model(st2v_model), frames=frames, height=height,
                                 width=width)
        st2v, unet = host.load_for_use([st2v_model, base_model], memory_required=need)
        video = generate_initial_chunk(unet, st2v, prompt, settings, negative_prompt=negative_prompt, seed=seed,
                                       on_step=host.progress_callback(steps, unique_id),
                                       output_device=host.intermediate_device())
        return (host.frames_to_image(video),)


class ST2VAnchorEncoder:
    DESCRIPTION = (
        "Encodes the appearance anchor (APM) that keeps a long video's look: one frame through OpenCLIP and the APM "
        "resampler, done once for the whole video. Default: frame 0 of the first chunk; any reference image works "
        "(other sizes are centre-cropped to the video's aspect ratio), and re-anchoring on a later frame is a "
        "frame_index away.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("ST2V_ANCHOR",)
    RETURN_NAMES = ("anchor",)
    OUTPUT_TOOLTIPS = ("The anchor, for the CAM Extender and the Chunk Loop.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "st2v_model": ("ST2V_MODEL", {"tooltip": MODEL_TOOLTIP}),
            "image": ("IMAGE", {"tooltip": "The frames or image to take the anchor from (e.g. the first chunk)."}),
            "frame_index": ("INT", {"default": 0, "min": -100000, "max": 100000,
                                    "tooltip": "Which frame of the batch: 0 = the first, -1 = the last."}),
        }}

    def encode(self, st2v_model, image, frame_index):
        from ..streaming_core.pipelines.memory_estimates import anchor_encode_for

        frames = host.image_to_frames(image, "the anchor image")
        need = anchor_encode_for(host.core_model(st2v_model), pixels=tuple(frames.shape[1:3]))
        (st2v,) = host.load_for_use([st2v_model], memory_required=need)
        return (encode_anchor_frame(st2v, frames, frame_index, output_device=host.intermediate_device()),)


class ST2VCAMExtender:
    DESCRIPTION = (
        "One autoregressive StreamingT2V step: conditions on the last 8 frames of the video so far (CAM) and the "
        "anchor (APM), generates 16 frames and keeps the 8 new ones. Chain several for a hand-made loop (a prompt "
        "per chunk, re-anchoring, branching); with one seed and prompt the chain makes the Chunk Loop's video.")
    CATEGORY = CATEGORY
    FUNCTION = "extend"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("new_frames", "video")
    OUTPUT_TOOLTIPS = ("The 8 new frames.", "The whole video: the input followed by the 8 new frames.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "st2v_model": ("ST2V_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "video": ("IMAGE", {"tooltip": "The video so far (at least 8 frames; sides multiples of 8)."}),
                "prompt": prompt_input("What this chunk shows."),
                "negative_prompt": negative_input(),
                "seed": seed_input("Seed of the chunk's noise (drawn like the Chunk Loop's chunk at this position)."),
                "steps": steps_input(EXTENSION.steps, f"DDIM steps (official: {EXTENSION.steps})."),
                **guidance_inputs(),
            },
            "optional": {"anchor": ("ST2V_ANCHOR", {"tooltip": ANCHOR_TOOLTIP})},
            "hidden": UNIQUE_ID,
        }

    def extend(self, st2v_model, video, prompt, negative_prompt, seed, steps, text_guidance, anchor_guidance,
               anchor=None, unique_id=None):
        frames = host.image_to_frames(video, "video")
        settings = ExtensionSettings([prompt], negative_prompt, seed, steps, guidance=text_guidance,
                                     anchor_guidance=anchor_guidance)
        (st2v,) = host.load_for_use([st2v_model], memory_required=extension_need(st2v_model, frames))
        new = extend_one_chunk(st2v, frames, settings, anchor=anchor, on_step=host.progress_callback(steps, unique_id),
                          output_device=host.intermediate_device())
        new = host.frames_to_image(new)
        return (new, torch.cat([host.frames_to_image(frames), new]))


NODE_CLASS_MAPPINGS = {
    "ST2VInitialChunk": ST2VInitialChunk,
    "ST2VAnchorEncoder": ST2VAnchorEncoder,
    "ST2VCAMExtender": ST2VCAMExtender,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ST2VInitialChunk": "ST2V Initial Chunk (ModelScope)",
    "ST2VAnchorEncoder": "ST2V Anchor APM Encoder",
    "ST2VCAMExtender": "ST2V CAM Extender",
}
