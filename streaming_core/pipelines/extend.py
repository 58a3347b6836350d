"""One CAM extension chunk of StreamingT2V: the single implementation behind the long-video loop,
the ComfyUI extender node and the parity check (spec §4.2).

Given the last ``Fc`` (8) frames of the video so far as CAM conditioning, the prompt's text tokens
and the anchor's APM tokens, it denoises a new ``num_frames`` (16) latent chunk with DDIM (50 steps,
eta 1 by default). The caller keeps the chunk's last ``num_frames - Fc`` frames (its first frames
re-synthesise the conditioning frames).

Guidance:
- joint (official): one scale over text and anchor together, 2 passes in ONE batch-2 forward:
  [(empty text, grey-anchor tokens), (prompt, anchor tokens)];
- paper eq. 12 (``anchor_guidance_scale`` different from ``guidance_scale``): 3 passes in one
  batch-3 forward: (empty, grey), (empty, anchor), (prompt, anchor). Equal scales telescope to the
  joint form and take the 2-pass path.

Random draws follow the official order and layout so a seeded run reproduces it: the initial latents
(B, 4, F, h, w) first, then at every step (eta > 0) the DDIM variance noise (B*F, 4, h, w)
frame-major, all float32 from a CPU ``torch.Generator`` and then moved, so results do not depend on
the device. The official run seeds one CPU generator with 33 and draws every chunk from it in turn:
pass the same generator to every chunk of a video. Either draw can be injected instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence, Union

import torch

from .. import validation
from ..errors import InputError
from ..models.streamingt2v import StreamingT2V
from ..official import EXTENSION
from ..progress import LatentPreview, ProgressCallback, no_progress
from ..sampling.guidance import cfg, text_anchor_guidance
from ..sampling.registry import OFFICIAL_SAMPLERS, get_sampler
from ..schedules.discrete import DiscreteVPSchedule, modelscope_t2v_schedule
from .checks import CHUNK_FRAMES, check_prompt, check_prompts, check_scale, check_seed, check_steps

OFFICIAL_SEED = EXTENSION.seed
OFFICIAL_STEPS = EXTENSION.steps
OFFICIAL_ETA = EXTENSION.eta
OFFICIAL_GUIDANCE = EXTENSION.guidance
OFFICIAL_SAMPLER = OFFICIAL_SAMPLERS["extension"]
RNG_MODES = ("per_chunk", "official")

NoiseSource = Union[Sequence[torch.Tensor], Callable[[int], torch.Tensor]]


@dataclass(frozen=True)
class ExtensionSettings:
    """How extension chunks are made; official values by default (``official.EXTENSION``). Checked when
    made, so a bad setting is refused before any model runs (the CLI and the nodes make one first).

    ``extend_chunk`` reads the sampling fields: ``steps``, ``eta``, ``guidance`` (the official joint
    scale over text and anchor; w_text of the paper's eq. 12 when ``anchor_guidance`` is given),
    ``anchor_guidance``, ``sampler`` (a name in ``sampling.registry``) and ``frames`` (per chunk).
    The chunk loop (``long_video``) reads the rest too: ``prompts`` (one, or one per generated chunk; the
    last repeats; default the empty prompt), ``negative_prompt``, ``seed`` and ``rng`` (``RNG_MODES``); a
    single chunk gets its text as tokens and its draws from a generator instead.
    """

    prompts: Sequence[str] = ("",)
    negative_prompt: str = ""
    seed: int = 0
    steps: int = OFFICIAL_STEPS
    eta: float = OFFICIAL_ETA
    guidance: float = OFFICIAL_GUIDANCE
    anchor_guidance: Optional[float] = None
    rng: str = "per_chunk"
    sampler: str = OFFICIAL_SAMPLER
    frames: int = CHUNK_FRAMES

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("prompts", tuple(check_prompts(self.prompts)))
        set_("negative_prompt", check_prompt(self.negative_prompt, "negative prompt"))
        set_("seed", check_seed(self.seed))
        check_steps(self.steps)
        eta = check_scale("eta", self.eta)
        if eta < 0:
            raise InputError(f"eta must be 0 or more ({OFFICIAL_ETA} is the official DDIM setting), got {eta}")
        set_("eta", eta)
        set_("guidance", check_scale("guidance", self.guidance))
        if self.anchor_guidance is not None:
            set_("anchor_guidance", check_scale("anchor guidance", self.anchor_guidance))
        if self.rng not in RNG_MODES:
            raise InputError(f"rng must be one of {', '.join(RNG_MODES)}, got {self.rng!r}")
        get_sampler(self.sampler)
        validation.whole("frames", self.frames, low=1, fix=f"a chunk has {CHUNK_FRAMES} frames officially")

    def prompt_for(self, generated_chunk: int) -> str:
        """The prompt of the ``generated_chunk``-th generated chunk (0-based); the last repeats."""
        return self.prompts[min(generated_chunk, len(self.prompts) - 1)]

    def as_dict(self) -> dict:
        """What a resume state records and an "auto" run name hashes (JSON values). ``sampler`` and
        ``frames`` came after resume-state version 1: recorded only when changed, so earlier states match."""
        d = dict(asdict(self), prompts=list(self.prompts))
        return {k: v for k, v in d.items() if k not in ("sampler", "frames") or v != getattr(ExtensionSettings, k)}


@dataclass
class ExtendConditioning:
    """Everything an extension chunk conditions on besides the CAM frames; compute it once per video
    (anchor, grey) and once per prompt (text)."""

    text: torch.Tensor  # (B, 77, D) prompt tokens
    uncond_text: torch.Tensor  # (B, 77, D) negative prompt tokens ('' officially)
    anchor: torch.Tensor  # (B, 16, D) APM tokens of the anchor frame
    uncond_anchor: torch.Tensor  # (B, 16, D) APM tokens of the grey (all-zero) frame


def build_conditioning(model: StreamingT2V, prompt: str | Sequence[str], anchor: torch.Tensor,
                       negative_prompt: str | Sequence[str] = "") -> ExtendConditioning:
    """Tokens from prompts and anchor frame(s) (B, 3, H, W) or (B, F, 3, H, W) signed pixels."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
    anchor_tokens = model.anchor_tokens(anchor)
    return ExtendConditioning(
        text=model.encode_prompts(prompts),
        uncond_text=model.encode_prompts(negatives),
        anchor=anchor_tokens,
        uncond_anchor=model.grey_anchor_tokens(batch=anchor_tokens.shape[0]),
    )


@dataclass
class StepInfo:
    """What ``step_hook`` sees after each step (debugging, parity traces)."""

    index: int
    timestep: int
    eps_guided: torch.Tensor  # (B, C, F, h, w)
    latents: torch.Tensor  # after the step
    x0: torch.Tensor  # predicted clean latents of the step


def uses_two_passes(guidance_scale: float, anchor_guidance_scale: Optional[float]) -> bool:
    return anchor_guidance_scale is None or float(anchor_guidance_scale) == float(guidance_scale)


def _batch(t: torch.Tensor, b: int, what: str) -> torch.Tensor:
    if t.shape[0] == b:
        return t
    if t.shape[0] == 1:
        return t.expand(b, *t.shape[1:])
    raise InputError(f"{what} has batch {t.shape[0]}, the CAM frames have {b}")


def draw_official_noise(generator: torch.Generator, latent_shape: Sequence[int], steps: int, eta: float,
                        draw_init: bool = True) -> tuple[Optional[torch.Tensor], list[torch.Tensor]]:
    """The draws of one chunk in the official order: initial latents (B, C, F, h, w) (unless given),
    then per step, when eta > 0, the DDIM variance noise (B*F, C, h, w) frame-major; float32 on the CPU."""
    b, c, f, h, w = latent_shape
    init = torch.randn(tuple(latent_shape), generator=generator, dtype=torch.float32) if draw_init else None
    per_step = [torch.randn((b * f, c, h, w), generator=generator, dtype=torch.float32)
                for _ in range(steps if eta > 0 else 0)]
    return init, per_step


def _noise(source: NoiseSource, index: int, shape, what: str) -> torch.Tensor:
    noise = source(index) if callable(source) else source[index]
    if tuple(noise.shape) != tuple(shape):
        raise InputError(f"{what} must have shape {tuple(shape)}, got {tuple(noise.shape)}")
    return noise.float()


@torch.no_grad()
def extend_chunk(
    model: StreamingT2V,
    cam_frames: torch.Tensor,
    cond: ExtendConditioning,
    settings: ExtensionSettings = ExtensionSettings(),
    *,
    generator: Optional[torch.Generator] = None,
    init_noise: Optional[torch.Tensor] = None,
    variance_noise: Optional[NoiseSource] = None,
    schedule: Optional[DiscreteVPSchedule] = None,
    on_step: Optional[ProgressCallback] = None,
    step_hook: Optional[Callable[[StepInfo], None]] = None,
) -> torch.Tensor:
    """Denoise one chunk; returns its latents (B, 4, settings.frames, h, w), float32, on the model's device.

    cam_frames: (B, Fc, 3, H, W) signed pixels [-1, 1], the last Fc frames of the video so far.
    cond: text / anchor tokens (``build_conditioning``); batch 1 broadcasts to B.
    settings: steps, eta, guidance (the joint scale, official 7.5, and w_text of eq. 12),
        anchor_guidance (w_anchor of eq. 12, None = same as guidance, official), sampler and frames;
        its prompts, seed and rng are the loop's (the text comes in ``cond``, the draws from ``generator``).
    generator: CPU generator for the draws (default: a fresh one seeded 33, as officially).
    init_noise: (B, 4, F, h, w) initial latents instead of drawing them.
    variance_noise: per-step DDIM noise (B*F, 4, h, w), a list indexed by step or a function of it.
    on_step(done, total, preview): called after every step with the step's x0 estimate as a
        ``LatentPreview`` (the host decodes it, or not); raising stops the run.
    step_hook: optional debug callback receiving a ``StepInfo`` after every step.
    """
    steps, eta, num_frames = settings.steps, settings.eta, settings.frames
    guidance_scale, anchor_guidance_scale = settings.guidance, settings.anchor_guidance
    if cam_frames.ndim != 5 or cam_frames.shape[2] != 3:
        raise InputError(f"CAM frames must be (B, Fc, 3, H, W) signed pixels, got {tuple(cam_frames.shape)}")
    b, fc, _, height, width = cam_frames.shape
    if num_frames < fc:
        raise InputError(f"a chunk of {num_frames} frames cannot hold {fc} CAM conditioning frames")
    scale = model.cam.controlnet_cond_embedding.downscale
    if height % scale or width % scale:
        raise InputError(f"frames of {height}x{width} pixels: height and width must be multiples of {scale} "
                         f"(the VAE's 8x8 pixel latents); resize or crop the video")
    device = model.device
    schedule = schedule or modelscope_t2v_schedule()
    sample = get_sampler(settings.sampler)
    generator = generator if generator is not None else torch.Generator().manual_seed(OFFICIAL_SEED)
    if generator.device.type != "cpu":
        raise InputError("extend_chunk draws its noise on the CPU (device-independent results, as officially): "
                         "pass a CPU torch.Generator")
    on_step = on_step or no_progress
    channels = model.unet.config.in_channels
    h, w = height // scale, width // scale

    text, uncond_text = _batch(cond.text, b, "text tokens"), _batch(cond.uncond_text, b, "uncond text tokens")
    anchor, grey = _batch(cond.anchor, b, "anchor tokens"), _batch(cond.uncond_anchor, b, "grey anchor tokens")
    two_pass = uses_two_passes(guidance_scale, anchor_guidance_scale)
    if two_pass:
        contexts = [model.context(uncond_text, grey), model.context(text, anchor)]
    else:
        contexts = [model.context(uncond_text, grey), model.context(uncond_text, anchor), model.context(text, anchor)]
    passes = len(contexts)
    context = torch.cat(contexts).to(device)
    frames = cam_frames.to(device).repeat(passes, 1, 1, 1, 1)

    shape = (b, channels, num_frames, h, w)
    frame_major = (b * num_frames, channels, h, w)
    drawn_init, drawn_steps = draw_official_noise(generator, shape, steps if variance_noise is None else 0, eta,
                                                  draw_init=init_noise is None)
    x = (drawn_init if init_noise is None else _noise([init_noise], 0, shape, "init_noise")).to(device)
    variance_noise = drawn_steps if variance_noise is None else variance_noise

    def guided_eps(latents: torch.Tensor, t: int) -> torch.Tensor:
        eps = model.predict_noise(latents.repeat(passes, 1, 1, 1, 1), t, context, frames).float()
        parts = eps.chunk(passes)
        if two_pass:
            return cfg(parts[0], parts[1], guidance_scale)
        return text_anchor_guidance(parts[0], parts[1], parts[2], guidance_scale, anchor_guidance_scale)

    def noise(i: int) -> torch.Tensor:
        drawn = _noise(variance_noise, i, frame_major, f"variance noise of step {i}").to(device)
        return drawn.reshape(b, num_frames, channels, h, w).permute(0, 2, 1, 3, 4)

    def after(step: dict) -> None:
        if step_hook is not None:
            step_hook(StepInfo(step["i"], step["t"], step["output"], step["x"], step["denoised"]))
        on_step(step["i"] + 1, steps, LatentPreview(step["denoised"]))

    x = sample(guided_eps, x, schedule, steps, eta=eta, noise=noise, callback=after)
    return x


def decode_chunk(model: StreamingT2V, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
    """(B, 4, F, h, w) latents -> (B, F, 3, H, W) unit pixels in [0, 1] (VAE in frame slices)."""
    return model.decode_latents(latents, slice_size)
