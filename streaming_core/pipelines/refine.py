"""Refine (enhance) a long low-resolution video with a short-video model: the paper's third stage.

frames -> fit to the enhancer's native resolution (padded as it was trained) -> VAE latents in frame
slices (and spatial tiles at 720p) -> SDEdit from ``strength`` with overlapping chunks and randomized
blending (``sampling/sdedit.py``) -> decode in slices -> padding removed.

Differences from the official driver, on purpose: any frame count >= one chunk works (the last
chunk moves back to end at the last frame; the official trims the video to 16k + 8 frames), the
black bars are removed from the output, and every random draw comes from ``seed`` (the official
takes the blend cuts from Python's global ``random``).
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import torch

from .. import validation
from ..errors import InputError
from ..progress import ProgressCallback, StepCounter
from ..seeds import derive_seed
from ..sampling.blend import BLEND_MODES, chunk_windows
from ..sampling.sdedit import SDE_NOISES, sdedit_windows
from ..sampling.vp_schedules import strength_to_timestep
from .enhancer import Enhancer, NativeResolution, crop_frames, place_frames, plan_frames

# SD latent -> RGB approximation for previews (a linear map per channel; SD 1.x/2.x latent space)
_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                            [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])


def latent_preview(latents: torch.Tensor, scale: float = 0.18215, max_frames: int = 4) -> Optional[torch.Tensor]:
    """(B, 4, f, h, w) scaled latents -> (<=max_frames, h, w, 3) rough colours in 0..1 on the CPU."""
    if latents.shape[1] != 4:
        return None
    z = latents[0, :, -max_frames:].float().cpu() / scale  # (4, f, h, w)
    rgb = torch.einsum("cfhw,cr->fhwr", z, _LATENT_RGB)
    return ((rgb + 1) / 2).clamp(0, 1)


def check_refine_settings(mode: str, chunk: int, overlap: int, strength: float, steps: int, guidance: float = 7.5,
                          seed: int = 0, sde_seed: Optional[int] = None,
                          resolution: Optional[NativeResolution] = None) -> None:
    """Every setting of a refine run (no frames needed: the CLI calls it before loading anything)."""
    if mode not in BLEND_MODES:
        raise InputError(f"unknown mode {mode!r}: use one of {', '.join(BLEND_MODES)}.")
    chunk = validation.whole("chunk", chunk, low=2, fix="the official chunk is 24 frames")
    if not 0 <= validation.whole("overlap", overlap, fix="the official overlap is 8") < chunk:
        raise InputError(f"overlap ({overlap}) must be at least 0 and smaller than the chunk ({chunk}), or the "
                         f"chunks would not advance: lower the overlap (the official setting is chunk 24, overlap 8).")
    validation.number("strength", strength, low=0.0, high=1.0, low_open=True,
                      fix="the official 0.6 re-noises to t=599 of 1000")
    validation.steps(steps, default_hint="the official value is 30")
    validation.guidance(guidance)
    validation.seed(seed)
    if sde_seed is not None:
        validation.seed(sde_seed, "SDE seed")
    if resolution is not None:
        height = validation.whole("height", resolution.height, low=1, fix="0 in the node: the enhancer's own")
        width = validation.whole("width", resolution.width, low=1, fix="0 in the node: the enhancer's own")
        validation.canvas(height, width, chunk, "canvas frames")


def check_refine_inputs(frames: torch.Tensor, mode: str, chunk: int, overlap: int, strength: float, steps: int,
                        **settings) -> None:
    check_refine_settings(mode, chunk, overlap, strength, steps, **settings)
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be a (frames, height, width, 3) tensor, got {shape}.")
    if frames.shape[0] < chunk:
        raise InputError(f"the video has {frames.shape[0]} frames, fewer than one chunk of {chunk}: give a longer "
                         f"video or a smaller chunk (at most {frames.shape[0]}).")


def _unit_frames(frames: torch.Tensor) -> torch.Tensor:
    if frames.dtype == torch.uint8:
        return frames.float() / 255
    frames = frames.float()
    if frames.numel() and (frames.min() < -1e-3 or frames.max() > 1 + 1e-3):
        raise InputError(f"frame values must lie in 0..1 (got {frames.min():.3g}..{frames.max():.3g}); "
                         f"convert 0..255 images to float / 255 first.")
    return frames.clamp(0, 1)


def refine(
    enhancer: Enhancer,
    frames: torch.Tensor,
    prompt: str,
    negative_prompt: str = "",
    mode: str = "randomized",
    chunk: int = 24,
    overlap: int = 8,
    strength: float = 0.6,
    steps: int = 30,
    guidance: float = 7.5,
    seed: int = 0,
    on_step: Optional[ProgressCallback] = None,
    **options,
) -> torch.Tensor:
    """(F, H, W, 3) frames in 0..1 -> (F, H', W', 3) enhanced frames in 0..1 (float32, CPU).

    H' x W' is the input fitted into the enhancer's native resolution (MS-Vid2Vid-XL: 256x256 ->
    720x720), or into ``resolution`` if given. ``strength``: how far to re-noise (fraction of the
    1000-step schedule; 0.6 = the official t=599). ``seed`` draws the initial noise, the blend cuts
    and the VAE posterior sample. ``on_step(done, total, preview)`` runs after every VAE slice and
    every chunk of every step; raise in it to stop. Keyword ``options`` as ``refine_parts``.
    """
    out, done = None, 0
    for part in refine_parts(enhancer, frames, prompt, negative_prompt, mode, chunk, overlap, strength, steps,
                             guidance, seed, on_step, **options):
        if out is None:  # filled slice by slice: a long HD video is held once, not twice as with a cat
            out = part.new_empty((frames.shape[0], *part.shape[1:]))
        out[done:done + part.shape[0]] = part
        done += part.shape[0]
    return out


@torch.no_grad()
def refine_parts(
    enhancer: Enhancer,
    frames: torch.Tensor,
    prompt: str,
    negative_prompt: str = "",
    mode: str = "randomized",
    chunk: int = 24,
    overlap: int = 8,
    strength: float = 0.6,
    steps: int = 30,
    guidance: float = 7.5,
    seed: int = 0,
    on_step: Optional[ProgressCallback] = None,
    *,
    sde_seed: Optional[int] = None,
    sde_noise: str = "gaussian",
    resolution: Optional[NativeResolution] = None,
    guidance_rescale: Optional[float] = None,
    previews: bool = True,
) -> Iterator[torch.Tensor]:
    """``refine``, yielding the output in decoded slices so a writer can stream them to disk.

    ``sde_noise``: ``"gaussian"`` (default): an independent draw per step over the whole video (so
    overlaps still share it), the same law as a Brownian increment at a fixed, small cost.
    ``"brownian"``: the official torchsde tree, bit-identical to the official code but about 0.9 s of
    CPU and 12 MB per frame (hours and tens of GB at 1,200 frames). ``sde_seed``: None = derived from
    ``seed`` for Gaussian draws, the official entropy 0 for the tree. ``guidance_rescale``: None = the
    enhancer's (MS-Vid2Vid-XL 0.2). ``resolution``: another canvas than the enhancer's native one.
    Everything is checked before any work starts.
    """
    check_refine_inputs(frames, mode, chunk, overlap, strength, steps, guidance=guidance, seed=seed,
                        sde_seed=sde_seed, resolution=resolution)
    if sde_noise not in SDE_NOISES:
        raise InputError(f"unknown sde_noise {sde_noise!r}: use one of {', '.join(SDE_NOISES)}.")
    frames = _unit_frames(frames)
    num = frames.shape[0]
    plan = plan_frames(frames.shape[1], frames.shape[2], resolution or enhancer.resolution, enhancer.vae_factor)
    windows = chunk_windows(num, chunk, overlap)
    slices = math.ceil(num / max(1, enhancer.vae_slice))
    counter = StepCounter(2 * slices + steps * len(windows), on_step)

    generator = torch.Generator().manual_seed(derive_seed("refine vae posterior", seed))
    parts = []
    for part in frames.split(max(1, enhancer.vae_slice)):
        parts.append(enhancer.encode(place_frames(part, plan), generator))
        counter.step()
    z0 = torch.cat(parts, dim=2)
    del parts

    cond, uncond = enhancer.encode_prompts(prompt, negative_prompt)
    model = enhancer.chunk_model(cond, uncond, guidance, guidance_rescale)
    t_start = strength_to_timestep(strength, enhancer.table)

    def on_window(step: int, k: int, x0: torch.Tensor) -> None:
        counter.step(latent_preview(x0, enhancer.vae.config.scaling_factor) if previews else None)

    latents = sdedit_windows(model, z0, enhancer.table, prediction_type=enhancer.prediction_type, t_start=t_start,
                             steps=steps, chunk=chunk, overlap=overlap, mode=mode, seed=seed,
                             sde_seed=sde_seed, sde_noise=sde_noise, init=enhancer.init,
                             on_window=on_window)
    del z0
    for part in latents.split(max(1, enhancer.vae_slice), dim=2):
        pixels = crop_frames(enhancer.decode(part), plan)
        counter.step()
        yield pixels


# -- benchmark (the ``bench`` command's contract, see ``streaming_core.benchmark``) -------------------------
def benchmark(*, full: bool = False, device: str = "cpu", dtype: Optional[torch.dtype] = None,
              steps: Optional[int] = None, kind: str = "ms_vid2vid_xl", frames: int = 40, chunk: int = 24,
              overlap: int = 8, seed: int = 0):
    """Seconds per frame and peak memory of ``refine`` with random weights, split into a per-step and
    a fixed part (VAE, text) by timing a 1-step and a ``steps``-step run.

    ``full=False``: the tiny enhancer on a tiny canvas (runs anywhere). ``full=True``: the released
    architecture built on ``device`` (MS-Vid2Vid-XL's 1.4B UNet, the ViT-H text tower, the SD VAE; or a
    zeroscope-size UNet3D), a 256 px input refined to 720x720 on the 1280x720 canvas - meant for a GPU.
    40 frames = two official chunks of 24 overlapping by 8.
    """
    from ..benchmark import BenchResult, measure_steps, peak_memory
    from ..tiny.enhancer import TINY_RESOLUTION, build_benchmark_enhancer

    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    steps = steps if steps is not None else (5 if full else 2)
    enhancer = build_benchmark_enhancer(kind, full=full, seed=seed, device=device).to(device, dtype)
    resolution = enhancer.resolution if full else TINY_RESOLUTION
    side = 256 if full else resolution.height // 2  # StreamingT2V's 256 px output, or a tiny square
    video = torch.rand(frames, side, side, 3, generator=torch.Generator().manual_seed(seed))
    chunk = min(chunk, frames)
    out_size = []

    def run(n: int) -> None:
        out = refine(enhancer, video, "a benchmark prompt", steps=n, chunk=chunk, overlap=overlap, seed=seed,
                     resolution=resolution, previews=False)
        out_size[:] = [f"{out.shape[2]}x{out.shape[1]}"]

    with peak_memory(device) as peak:
        seconds, per_step, fixed = measure_steps(run, steps, device)
        memory, memory_kind = peak()
    windows = len(chunk_windows(frames, chunk, overlap))
    return BenchResult(
        stage="refine", device=str(device), dtype=str(dtype).replace("torch.", ""), size=out_size[0], frames=frames,
        steps=steps, seconds=seconds, seconds_per_step=per_step, fixed_seconds=fixed, official_steps=30,
        peak_memory_bytes=memory, memory_kind=memory_kind,
        note=f"{kind}{' full size' if full else ' tiny'}, {windows} chunks of {chunk} (overlap {overlap}), "
             f"canvas {resolution.width}x{resolution.height}")

