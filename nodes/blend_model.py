"""ST2V Randomized Blend (Model): the paper's randomized blending for any native ComfyUI video model."""

from __future__ import annotations

from ..streaming_core.sampling.context_blend import latent_window
from . import host
from .common_inputs import seed_input

TEMPORAL_COMPRESSION_CHOICES = ("auto", "1x", "4x", "6x", "8x")
FRAME_AXIS_CHOICES = ("auto", "time", "batch")


class ST2VRandomizedBlendModel:
    DESCRIPTION = (
        "Lets a native video model (Wan, LTXV, Hunyuan, ...) sample videos longer than it was trained for: "
        "every model call runs on overlapping windows of the latent and, inside each overlap, the frames "
        "before a random cut come from the earlier window and the rest from the later one, with a new cut "
        "at every step (StreamingT2V's randomized blending), so no frame becomes a fixed seam. The whole video "
        "is one latent with one noise tensor. Plug it between the model loader and the sampler.")
    CATEGORY = "StreamingT2V/model patches"
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The same model, patched to run in blended windows; use it in any sampler node.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The native video model to patch (from Load Diffusion Model or a checkpoint loader)."}),
                "context_length": ("INT", {
                    "default": 81, "min": 1, "max": 16384, "step": 1,
                    "tooltip": "Window length in video frames: the length the model was trained on (Wan 81, LTXV 97 or 121, "
                               "Hunyuan 61-129). Converted to latent frames for you: (n-1)//4+1 for Wan/Hunyuan, "
                               "(n-1)//8+1 for LTXV."}),
                "context_overlap": ("INT", {
                    "default": 25, "min": 0, "max": 16384, "step": 1,
                    "tooltip": "Frames shared by neighbouring windows; the random cut falls inside them. About a third of "
                               "the window (the paper's 8 of 24) works well; more overlap means more windows per step."}),
                "blend": (list(host.BLEND_CHOICES), {
                    "default": "randomized",
                    "tooltip": "randomized: a new random cut in every overlap at every step (the paper). hard_cut_middle: "
                               "a fixed cut in the middle of each overlap (the paper's baseline). pyramid, relative, flat, "
                               "overlap-linear: ComfyUI's own weighted fuses, same windows, for comparison."}),
                "seed": seed_input("Seed of the random cuts; with the sampler's seed fixed, the same value gives "
                                   "the same video."),
                "temporal_compression": (list(TEMPORAL_COMPRESSION_CHOICES), {
                    "default": "auto",
                    "tooltip": "Video frames per latent frame. auto reads it from the model: 4x Wan and Hunyuan, 8x LTXV "
                               "and Cosmos, 6x Mochi, 1x image models run over a batch of frames."}),
                "frame_axis": (list(FRAME_AXIS_CHOICES), {
                    "default": "auto",
                    "tooltip": "Latent axis that holds the frames. auto: time for video models ([B, C, T, H, W] latents), "
                               "batch for image models (frames as the batch, AnimateDiff style)."}),
            }
        }

    def patch(self, model, context_length, context_overlap, blend, seed, temporal_compression, frame_axis):
        layout = host.resolve_layout(model, frame_axis, temporal_compression)
        chunk, overlap = latent_window(context_length, context_overlap, layout.temporal_compression)
        return (host.patch_model_with_blend(model, blend, chunk, overlap, layout.dim, seed),)


NODE_CLASS_MAPPINGS = {"ST2VRandomizedBlendModel": ST2VRandomizedBlendModel}
NODE_DISPLAY_NAME_MAPPINGS = {"ST2VRandomizedBlendModel": "ST2V Randomized Blend (Model)"}
