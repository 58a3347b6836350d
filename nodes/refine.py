"""ST2V Randomized Blend Refiner: the paper's third stage (high-resolution SDEdit in blended chunks)."""

from __future__ import annotations

from ..streaming_core.models.enhancer import NativeResolution
from ..streaming_core.pipelines.refine import check_refine_settings, refine
from ..streaming_core.sampling.blend import BLEND_MODES
from ..streaming_core.sampling.sdedit import SDE_NOISES
from . import host
from .common_inputs import UNIQUE_ID, negative_input, prompt_input, scale_input, seed_input, steps_input


class ST2VRandomizedBlendRefiner:
    DESCRIPTION = (
        "Enhances a long low-resolution video with a short high-resolution video model (MS-Vid2Vid-XL, or a "
        "zeroscope-style UNet3D): SDEdit of overlapping chunks that share one noise tensor, with a new random cut "
        "inside every overlap at every step (randomized blending, paper Sec. 4.3), so chunks join without seams. "
        "The modes shared_noise and independent are the paper's baselines, for comparison.")
    CATEGORY = "StreamingT2V"
    FUNCTION = "refine"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("The enhanced video: same frames, at the enhancer's resolution (720 px for MS-Vid2Vid-XL).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "enhancer": ("ST2V_ENHANCER", {"tooltip": "The enhancer from the Enhancer Loader."}),
                "video": ("IMAGE", {"tooltip": "The video to enhance (at least one chunk of frames)."}),
                "prompt": prompt_input("What the video shows (the generation prompt works well)."),
                "negative_prompt": negative_input(),
                "mode": (list(BLEND_MODES), {
                    "default": "randomized",
                    "tooltip": "randomized: shared noise and a new random cut per overlap per step (the paper). "
                               "shared_noise: every chunk on its own from the same noise, joined in the middle of each "
                               "overlap. independent: every chunk on its own with its own noise, joined the same "
                               "way (visible seams)."}),
                "chunk": ("INT", {"default": 24, "min": 2, "max": 1024,
                                  "tooltip": "Frames per chunk (official: 24)."}),
                "overlap": ("INT", {"default": 8, "min": 0, "max": 1023,
                                    "tooltip": "Frames shared by neighbouring chunks (official: 8); smaller than "
                                               "chunk."}),
                "strength": ("FLOAT", {"default": 0.6, "min": 0.01, "max": 1.0, "step": 0.01,
                                       "tooltip": "How far the video is re-noised (official: 0.6, i.e. t=599 of "
                                                  "1000): higher changes more."}),
                "steps": steps_input(30, "Solver steps over the re-noised range (official: 30)."),
                "guidance": scale_input(7.5, "Classifier-free guidance scale (official: 7.5)."),
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
                               "for long videos (about 1 s and 12 MB of CPU per frame)."}),
            },
            "hidden": UNIQUE_ID,
        }

    def refine(self, enhancer, video, prompt, negative_prompt, mode, chunk, overlap, strength, steps, guidance, seed,
               width, height, sde_noise, unique_id=None):
        from ..streaming_core.pipelines.memory_estimates import refine_window_for  # imports RAFT's module

        frames = host.image_to_frames(video, "video")
        # the same checks as the CLI and refine(), before the enhancer is moved to the device: a NaN guidance
        # from a Primitive would otherwise make every latent NaN and save a black video
        check_refine_settings(mode, chunk, overlap, strength, steps, guidance, seed,
                              resolution=NativeResolution(width, height) if width and height else None)
        native = host.bundle_of(enhancer).resolution
        resolution = NativeResolution(width or native.width, height or native.height, native.pad)
        need = refine_window_for(host.bundle_of(enhancer), frames=chunk, height=resolution.height,
                                 width=resolution.width)
        model = host.load_bundle_for_use(enhancer, memory_required=need)
        out = refine(model, frames, prompt, negative_prompt, mode=mode, chunk=chunk, overlap=overlap,
                     strength=strength, steps=steps, guidance=guidance, seed=seed,
                     on_step=host.progress_callback(steps, unique_id), sde_noise=sde_noise, resolution=resolution)
        return (host.frames_to_image(out),)


NODE_CLASS_MAPPINGS = {"ST2VRandomizedBlendRefiner": ST2VRandomizedBlendRefiner}
NODE_DISPLAY_NAME_MAPPINGS = {"ST2VRandomizedBlendRefiner": "ST2V Randomized Blend Refiner"}
