"""The first chunk of a long video: 16 frames from the stock ModelScope text-to-video UNet (spec §0).

Officially diffusers' ``TextToVideoSDPipeline`` with ``DPMSolverMultistepScheduler`` built from the
ModelScope DDIM config, 50 steps, guidance 9.0, no negative prompt, 256x256. The same computation
here: prompt and negative prompt encoded by the StreamingT2V checkpoint's text encoder (the same
frozen ModelScope text encoder), [uncond, cond] in one batched UNet forward, DPM-Solver++(2M) or
DDIM, the VAE decoding frames in slices.

The initial noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` and then moved,
so a seed gives the same chunk on every device (the official run drew on a CUDA generator, which no
CPU can reproduce; diffusers with ``generator=torch.Generator("cpu").manual_seed(seed)`` matches).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch

from .. import validation
from ..errors import InputError
from ..models.unet3d import UNet3D
from ..official import INITIAL_CHUNK
from ..progress import LatentPreview, ProgressCallback, all_but_last, no_progress
from ..sampling.guidance import cfg
from ..sampling.registry import OFFICIAL_SAMPLERS, get_sampler
from ..schedules.discrete import modelscope_t2v_schedule
from .checks import CHUNK_FRAMES, LATENT_FACTOR, check_prompt, check_scale, check_seed, check_size, check_steps
from .frames import unit_to_image
from ..models.operations import execution_device

OFFICIAL_STEPS = INITIAL_CHUNK.steps
OFFICIAL_GUIDANCE = INITIAL_CHUNK.guidance
OFFICIAL_SIZE = INITIAL_CHUNK.size
OFFICIAL_SAMPLER = OFFICIAL_SAMPLERS["initial_chunk"]


@dataclass(frozen=True)
class InitialChunkSettings:
    """How the first chunk is sampled; official values by default (``official.INITIAL_CHUNK`` and the
    official sampler). Checked when made, so a bad setting is refused before any model runs.

    ``sampler``: a name in ``sampling.registry`` ("dpmpp_2m" officially, or "ddim" with ``eta``, whose
    noise then comes from the same generator after the initial draw). ``frames``: the chunk's length
    (the chunk loop needs the official 16).
    """

    steps: int = OFFICIAL_STEPS
    guidance: float = OFFICIAL_GUIDANCE
    sampler: str = OFFICIAL_SAMPLER
    height: int = OFFICIAL_SIZE
    width: int = OFFICIAL_SIZE
    eta: float = 0.0
    frames: int = CHUNK_FRAMES

    def __post_init__(self):
        check_steps(self.steps)
        object.__setattr__(self, "guidance", check_scale("first-chunk guidance", self.guidance))
        check_size(self.height, self.width)
        validation.whole("frames", self.frames, low=1, fix=f"a chunk has {CHUNK_FRAMES} frames officially")
        get_sampler(self.sampler)
        if check_scale("eta", self.eta) < 0:
            raise InputError(f"eta must be 0 or more, got {self.eta}")

    def as_dict(self) -> dict:
        """What a resume state records and an "auto" run name hashes. ``eta`` and ``frames`` came after
        resume-state version 1: recorded only when changed, so earlier states still match."""
        d = asdict(self)
        return {k: v for k, v in d.items() if k not in ("eta", "frames") or v != getattr(InitialChunkSettings, k)}


def _check_text_model(st2v) -> None:
    for name in ("text_encoder", "vae"):
        if getattr(st2v, name, None) is None:
            raise InputError(f"the first chunk needs the StreamingT2V checkpoint's {name.replace('_', ' ')}, and "
                             f"this StreamingT2V model was loaded without one. Load the full checkpoint.")


def _check_unet(unet: UNet3D, text_width: int) -> None:
    config = getattr(unet, "config", None)
    if config is None or not hasattr(config, "cross_attention_dim"):
        raise InputError("the first-chunk model must be a ModelScope UNet3D (load it with "
                         "streaming_core.checkpoints.modelscope.load_modelscope_unet)")
    if config.cam_mergers or config.apm:
        raise InputError("the first-chunk model is a StreamingT2V denoiser (it has CAM/APM layers); the first "
                         "chunk needs the stock ModelScope text-to-video UNet.")
    if config.cross_attention_dim != text_width:
        raise InputError(f"the ModelScope UNet expects {config.cross_attention_dim}-wide text tokens but the "
                         f"StreamingT2V text encoder makes {text_width}-wide ones: the two checkpoints do not "
                         f"belong together.")


@torch.no_grad()
def generate_initial_chunk(
    unet: UNet3D,
    st2v,
    prompt: str,
    settings: InitialChunkSettings = InitialChunkSettings(),
    *,
    negative_prompt: str = "",
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    init_noise: Optional[torch.Tensor] = None,
    on_step: Optional[ProgressCallback] = None,
    output_device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Text -> the first ``settings.frames`` frames, an IMAGE batch (F, H, W, 3) float32 in 0..1.

    unet: the stock ModelScope UNet3D (``checkpoints.modelscope``); st2v: the StreamingT2V model,
        whose text encoder and VAE are used.
    settings: steps, guidance, sampler, size, eta and frames (``InitialChunkSettings``).
    generator: CPU generator for every draw (default: seeded with ``seed``); init_noise: (1, 4, F,
        h, w) latents instead of the first draw.
    on_step(done, total, preview): after every step with the x0 estimate (``LatentPreview``); the
        last call carries the decoded frames as preview. Raising from it stops the run.
    """
    prompt = check_prompt(prompt)
    negative_prompt = check_prompt(negative_prompt, "negative prompt")
    steps, guidance, eta, frames = settings.steps, settings.guidance, settings.eta, settings.frames
    height, width = settings.height, settings.width
    sample = get_sampler(settings.sampler)
    _check_text_model(st2v)
    on_step = on_step or no_progress
    generator = generator if generator is not None else torch.Generator().manual_seed(check_seed(seed))

    device, dtype = execution_device(unet), unet.dtype
    context = st2v.encode_prompts([negative_prompt, prompt])  # batch order [uncond, cond], as diffusers
    _check_unet(unet, context.shape[-1])
    context = context.to(device, dtype)
    shape = (1, unet.config.in_channels, frames, height // LATENT_FACTOR, width // LATENT_FACTOR)
    if init_noise is None:
        x = torch.randn(shape, generator=generator, dtype=torch.float32)
    elif tuple(init_noise.shape) != shape:
        raise InputError(f"init_noise must have shape {shape}, got {tuple(init_noise.shape)}")
    else:
        x = init_noise.float()
    x = x.to(device)

    def guided_eps(latents: torch.Tensor, t: int) -> torch.Tensor:
        out = unet(latents.repeat(2, 1, 1, 1, 1).to(dtype), t, context).float()
        uncond, cond = out.chunk(2)
        return cfg(uncond, cond, guidance)

    every_but_last = all_but_last(on_step)  # the last step is reported with the decoded frames

    def report(step: dict) -> None:
        every_but_last(step["i"] + 1, steps, LatentPreview(step["denoised"]))

    def noise(i: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)

    x = sample(guided_eps, x, modelscope_t2v_schedule(), steps, eta=eta, noise=noise, callback=report)

    video = unit_to_image(st2v.decode_latents(x)[0]).to(output_device)
    on_step(steps, steps, video.detach().cpu())
    return video
