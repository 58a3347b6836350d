"""Stream-DiffVSR: causal x4 video super-resolution, one frame at a time (spec §4).

Per low-res frame L_i (after ``preprocess_frame``), with the previous raw HR output Y_{i-1} as the
only recurrence:

1. U_i = bicubic x4 of L_i (RAFT input only);
2. frames i > 0: flow = RAFT(U_i, U_{i-1}) at HR, W_i = flow_warp(Y_{i-1}, flow);
3. z ~ N(0, 1) of shape (1, 4, h, w) (latent = LR size);
4. DDIM, v-prediction, t = 999, 749, 499, 249: v = UNet(cat(z, L_i), t, CLIP(""), ARTG(W_i) residuals);
   frame 0 runs the UNet alone;
5. Y_i = TPM decoder(z), guided (i > 0) by the encoder-block features of W_i;
6. output clamp(Y_i / 2 + 0.5, 0, 1); the *unclamped* Y_i and L_i are the state for frame i + 1.

Usage::

    stream = upscale_stream(models, frames, settings=UpscaleSettings(seed=0))  # any iterable of (H, W, 3)
    for hr in stream:                   # (4h, 4w, 3) float 0..1, CPU
        writer.write(hr)
    state = stream.state                # continue later: state=state

``stream.state`` is the state after the last frame handed out (also after an early break), a small
``UpscaleState`` of tensors and ints that can be saved with ``state.save(path)`` and carried
across ComfyUI queue runs; upscaling a video in several calls, each starting from the previous
call's state, gives exactly the frames of one call.

Noise: one CPU ``torch.Generator`` seeded once, one ``randn(1, 4, h, w)`` per frame in frame order
(the official draw order), so results do not depend on the device; its state travels in
``UpscaleState``. ``noise=`` replaces the draws (parity with recorded official noise).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

from .. import validation
from ..benchmark import BenchResult, measure_steps, peak_memory
from ..errors import InputError
from ..oom import retry_smaller
from ..models.sdvsr.bundle import NUM_STEPS, SDVSRModels
from ..models.sdvsr.denoiser import predict_v, reuse_cond_embedding
from ..models.sdvsr.flow import DEFAULT_TILE_OVERLAP, RAFT_DOWNSAMPLE, FlowEstimator, auto_tile_size
from ..models.sdvsr.warp import flow_warp
from ..official import UPSCALE
from ..progress import ProgressCallback, StepCounter, all_but_last
from ..sampling.registry import OFFICIAL_SAMPLERS, get_sampler
from ..state_files import load_safetensors, save_safetensors
from ..tiny.sdvsr import build_random_sdvsr
from ..validation import parse_flow_tile  # noqa: F401  (part of this module's API)
from .sdvsr_frames import bicubic_x4, preprocess_frame, to_image

DEFAULT_FLOW_BUDGET = 6 * 1024**3  # bytes of RAFT correlation volume before ``flow_tile="auto"`` tiles


@dataclass
class UpscaleState:
    """What frame i + 1 needs from the past. Tensors live on the CPU when handed out."""

    prev_hr: torch.Tensor  # (1, 3, 4h, 4w) float32: the previous raw (unclamped) decoder output
    prev_lr: torch.Tensor  # (1, 3, h, w) float32 in [-1, 1]: the previous preprocessed LR frame
    rng_state: torch.Tensor  # uint8: state of the CPU noise generator after the previous frame
    frames_done: int = 0
    seed: int = 0

    def to(self, device) -> "UpscaleState":
        return UpscaleState(self.prev_hr.to(device), self.prev_lr.to(device), self.rng_state, self.frames_done, self.seed)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Everything as tensors (ints as 0-d int64): ready for ``safetensors``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.int64)
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "UpscaleState":
        missing = {f.name for f in fields(cls)} - tensors.keys()
        if missing:
            raise InputError(f"not an upscale state: missing {', '.join(sorted(missing))}")
        return cls(tensors["prev_hr"].float(), tensors["prev_lr"].float(), tensors["rng_state"].to(torch.uint8),
                   int(tensors["frames_done"]), int(tensors["seed"]))

    def save(self, path: str | Path) -> None:
        save_safetensors(self.to_tensors(), path)

    @classmethod
    def load(cls, path: str | Path) -> "UpscaleState":
        return cls.from_tensors(load_safetensors(path))


Recorder = Callable[[str, torch.Tensor], None]


@torch.no_grad()
def denoise_and_decode(
    models: SDVSRModels,
    lr: torch.Tensor,
    noise: torch.Tensor,
    warped_prev: Optional[torch.Tensor],
    steps: int = NUM_STEPS,
    after_step: Optional[Callable[[int], None]] = None,
    record: Optional[Recorder] = None,
    sampler: str = OFFICIAL_SAMPLERS["upscale"],
) -> torch.Tensor:
    """Steps 3-5 for one frame: DDIM (``sampler``, a name in ``sampling.registry``) over the UNet (+
    ARTG when ``warped_prev`` is given), then the TPM decoder. ``lr`` (1,3,h,w) in [-1,1], ``noise``
    (1,4,h,w). Returns the raw HR output, float32.

    The latent and the DDIM arithmetic stay float32; UNet/ControlNet run in ``models.dtype``, the
    decoder in ``models.vae_dtype``.
    """
    dtype, device = models.dtype, models.device
    schedule = models.schedule
    embeds = models.prompt_embeds.to(device, dtype)
    lr_in = lr.to(device, dtype)
    cond = None if warped_prev is None else warped_prev.to(device, dtype)
    z = noise.to(device, torch.float32)
    sample = get_sampler(sampler)

    def model(latent: torch.Tensor, t: int) -> torch.Tensor:
        timestep = torch.tensor(t, device=device, dtype=torch.int64)
        x_in = torch.cat([latent.to(dtype), lr_in], dim=1)
        return predict_v(models.unet, models.controlnet, x_in, timestep, embeds, cond, record).float()

    def after(step: dict) -> None:
        if record is not None:
            record("vpred", step["output"])
            record("latent", step["x"])
        if after_step is not None:
            after_step(step["i"])

    with reuse_cond_embedding(models.controlnet, cond) if cond is not None else contextlib.nullcontext():
        z = sample(model, z, schedule, steps, callback=after)
    vae_dtype = models.vae_dtype
    return models.vae.decode(z.to(vae_dtype), None if warped_prev is None else warped_prev.to(device, vae_dtype)).float()


@dataclass
class _FlowCache:
    """RAFT features of the previous HR-bicubic frame, reused as the 'previous' side of the next pair."""

    size: tuple[int, int]
    feats: list[torch.Tensor] = field(default_factory=list)


FLOW_FITS = ("free GPU memory (other models, other programs; --offload outside ComfyUI) or set a smaller RAFT tile "
             "(--tile / flow_tile, at least RAFT's minimum input)")


def _tile_words(tile: Optional[int]) -> str:
    return "whole frames" if tile is None else f"{tile}-pixel tiles"


def smaller_flow_tile(tile: Optional[int], hr_size: tuple[int, int], minimum: int) -> Optional[int]:
    """The RAFT tile of the out-of-memory retry: half the current tile side (or half the frame's longer
    side when untiled), not below RAFT's minimum input; None when nothing smaller is possible."""
    side = max(hr_size) if tile is None else tile
    smaller = max(minimum, side // 2 // RAFT_DOWNSAMPLE * RAFT_DOWNSAMPLE)
    return smaller if smaller < side and smaller < max(hr_size) else None


@dataclass(frozen=True)
class UpscaleSettings:
    """What decides an upscaled video besides the models and the frames; official by default
    (``official.UPSCALE``). Checked when made (``validation.upscale_settings``).

    seed: the per-frame noise's generator (only for a new video: a continued one carries its own).
    flow_tile: None (official whole-frame RAFT), an int (HR tile side for RAFT), or "auto" (tile only
        when RAFT's correlation volume would exceed ~6 GiB); "off"/0 and digit strings as the CLI and
        the node menu give them. See ``models.sdvsr.flow``.
    """

    seed: int = 0
    steps: int = UPSCALE.steps
    flow_tile: int | str | None = None
    flow_tile_overlap: int = DEFAULT_TILE_OVERLAP

    def __post_init__(self):
        validation.upscale_settings(self.seed, self.steps, self.flow_tile, self.flow_tile_overlap)
        object.__setattr__(self, "flow_tile", parse_flow_tile(self.flow_tile))  # one spelling per choice


class UpscaleStream:
    """Upscale ``frames`` x4, causally, one frame at a time (see the module docstring): iterate to get
    HR frames; ``.state`` is the state after the last frame handed out.

    frames: iterable of (H, W, 3) uint8 / float 0..1 tensors, arrays or PIL images, or an
        (F, H, W, 3) batch. All frames of one video must share a size; sizes are floored to a
        multiple of 4 (by resizing, as official) and the output is 4x the floored size.
    state: ``UpscaleState`` from a previous call to continue that video; None starts a new one
        (its first frame has no temporal guidance).
    noise: per-frame noise (1, 4, h, w) replayed instead of drawn (parity with recorded official noise).
    on_step: progress/cancel callback, called after every denoising step; ``total`` is
        frames x steps when the number of frames is known (else 0); each frame's last call carries
        the new HR frame as preview.
    record(frame, name, tensor): every intermediate, for parity checks.
    Yields (4h, 4w, 3) float32 frames in 0..1 on ``output_device``.
    """

    def __init__(
        self,
        models: SDVSRModels,
        frames: Iterable[Any],
        state: Optional[UpscaleState] = None,
        settings: UpscaleSettings = UpscaleSettings(),
        *,
        noise: Optional[Iterable[torch.Tensor]] = None,
        on_step: Optional[ProgressCallback] = None,
        total_frames: Optional[int] = None,
        output_device: str | torch.device = "cpu",
        record: Optional[Callable[[int, str, torch.Tensor], None]] = None,
    ):
        if isinstance(frames, torch.Tensor) and frames.ndim != 4:
            raise InputError(f"frames must be a batch (F, H, W, 3) or an iterable of (H, W, 3) frames; got a tensor "
                             f"of shape {tuple(frames.shape)}" + (" (one frame? wrap it: [frame])" if frames.ndim == 3 else ""))
        if not isinstance(settings, UpscaleSettings):
            raise InputError(f"settings must be an UpscaleSettings, got {type(settings).__name__}")
        if total_frames is None and hasattr(frames, "__len__"):
            total_frames = len(frames)
        self.models = models
        self.frames = frames
        self.steps = settings.steps
        self.seed = int(settings.seed)
        self.flow_tile = settings.flow_tile
        self.flow_tile_overlap = settings.flow_tile_overlap
        self.noise = None if noise is None else iter(noise)
        self.total_frames = total_frames
        self.output_device = torch.device(output_device)
        self.record = record
        self._counter = StepCounter((total_frames or 0) * self.steps, on_step)
        self._state = state
        self._state_cpu: Optional[UpscaleState] = state
        self._flow_cache: Optional[_FlowCache] = None
        self._estimator: Optional[FlowEstimator] = None
        self._generator = torch.Generator("cpu")
        if state is None:
            self._generator.manual_seed(self.seed)
        else:
            self._generator.set_state(state.rng_state.clone())
            self.seed = state.seed

    @property
    def state(self) -> Optional[UpscaleState]:
        """The state after the last frame handed out (None before the first), on the CPU."""
        if self._state_cpu is None and self._state is not None:
            self._state_cpu = self._state.to("cpu")
        return self._state_cpu

    def __iter__(self) -> Iterator[torch.Tensor]:
        for index, frame in enumerate(self.frames):
            hr = self._upscale_one(frame, index)
            yield hr.to(self.output_device)

    # ------------------------------------------------------------------------------------------

    def _estimator_for(self, height: int, width: int) -> FlowEstimator:
        if self._estimator is None:
            raft = self.models.raft
            tile = self.flow_tile
            if tile == "auto":
                tile = auto_tile_size(height, width, DEFAULT_FLOW_BUDGET, raft.min_image_size)
            try:
                self._estimator = FlowEstimator(raft, tile, self.flow_tile_overlap)
            except ValueError as exc:
                raise InputError(str(exc)) from exc
        return self._estimator

    def _check_size(self, lr: torch.Tensor, index: int) -> None:
        h, w = lr.shape[-2:]
        scale = self.models.scale
        need = math.ceil(self.models.raft.min_image_size / scale)
        if h < need or w < need:
            raise InputError(f"frame {index} is {w}x{h} after flooring to a multiple of 4; Stream-DiffVSR's optical "
                             f"flow runs at {scale}x that size and needs at least {need}x{need} input frames.")
        if self._state is not None and tuple(self._state.prev_lr.shape[-2:]) != (h, w):
            ph, pw = self._state.prev_lr.shape[-2:]
            raise InputError(f"frame {index} is {w}x{h} but the state continues a video of {pw}x{ph}: all frames of a "
                             f"video must have one size; start without a state for a new video.")

    def _next_noise(self, shape) -> torch.Tensor:
        if self.noise is not None:
            try:
                noise = next(self.noise)
            except StopIteration:
                raise InputError("the given noise ran out before the frames did") from None
            noise = noise.reshape(shape) if noise.numel() == math.prod(shape) else noise
            if tuple(noise.shape) != tuple(shape):
                raise InputError(f"given noise has shape {tuple(noise.shape)}, expected {tuple(shape)}")
            return noise.float()
        return torch.randn(shape, generator=self._generator, dtype=torch.float32)

    def _warp_previous(self, estimator: FlowEstimator, upscaled: torch.Tensor, device, record):
        """The previous HR frame warped onto this one (None for the first frame); caches this frame's features."""
        feats = estimator.features(upscaled)
        warped = None
        if self._state is not None:
            cache = self._flow_cache
            if cache is None or cache.size != tuple(upscaled.shape[-2:]):
                prev = bicubic_x4(self._state.prev_lr.to(device), self.models.scale)
                cache = _FlowCache(tuple(prev.shape[-2:]), estimator.features(prev))
            flow = estimator.flow(upscaled, feats, cache.feats)
            warped = flow_warp(self._state.prev_hr.to(device), flow)
            if record is not None:
                record("flow", flow)
                record("warped", warped)
            del flow, cache
        self._flow_cache = _FlowCache(tuple(upscaled.shape[-2:]), feats)
        return warped

    def _upscale_one(self, frame: Any, index: int) -> torch.Tensor:
        models, device = self.models, self.models.device
        lr = preprocess_frame(frame, index).to(device)
        self._check_size(lr, index)
        frame_no = self._state.frames_done if self._state is not None else 0
        record = None if self.record is None else (lambda name, t: self.record(frame_no, name, t))
        estimator = self._estimator_for(*(s * models.scale for s in lr.shape[-2:]))
        upscaled = bicubic_x4(lr, models.scale)
        hr_size = tuple(upscaled.shape[-2:])

        def attempt(tile):
            if tile != estimator.tile:  # the retry: smaller RAFT tiles (features are per tile: recomputed)
                self._estimator, self._flow_cache = FlowEstimator(models.raft, tile, self.flow_tile_overlap), None
            return self._warp_previous(self._estimator, upscaled, device, record)

        warped = retry_smaller("RAFT optical flow", attempt, estimator.tile, smaller_flow_tile(
            estimator.tile, hr_size, models.raft.min_image_size), FLOW_FITS, _tile_words)
        del upscaled

        noise = self._next_noise((1, models.vae.config.latent_channels, *lr.shape[-2:]))
        if record is not None:
            record("noise", noise)
        counter = self._counter
        report = all_but_last(counter.count)  # the frame's last step is reported below, with the frame
        hr = denoise_and_decode(models, lr, noise, warped, self.steps, after_step=lambda k: report(k + 1, self.steps),
                                record=record)
        image = to_image(hr).cpu()
        if record is not None:
            record("hr", hr)
        counter.step(image[None])  # may cancel: then this frame is dropped and the state stays as it was
        self._state = UpscaleState(hr, lr, self._generator.get_state(), frame_no + 1, self.seed)
        self._state_cpu = None
        return image


# The entry point, named as the call it is: ``upscale_stream(models, frames, state, settings)``.
upscale_stream = UpscaleStream


def benchmark(*, full: bool = False, device: str = "cpu", dtype: Optional[torch.dtype] = None,
              steps: Optional[int] = None, seed: int = 0):
    """Seconds per upscaled frame and peak memory of ``upscale_stream`` with random weights.

    The step count is fixed (4 DDIM steps per frame), so the timing model's "steps" are frames here:
    a 1-frame and an n-frame run separate the steady cost of a frame (RAFT, ControlNet, 4 steps,
    decode) from the first frame's (no flow, no ControlNet). Tiny: a 12x16 input anywhere.
    ``full=True``: the released networks on ``device``, a 256x256 StreamingT2V frame to 1024x1024.
    """
    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    n = steps if steps is not None else 2
    models = build_random_sdvsr(full, device, seed).to(device, dtype)
    side = (256, 256) if full else (12, 16)
    video = torch.rand(n, *side, 3, generator=torch.Generator().manual_seed(seed))

    def run(count: int) -> None:
        for _ in upscale_stream(models, video[:count], settings=UpscaleSettings(seed=seed)):
            pass

    with peak_memory(device) as peak:
        seconds, per_frame, first_extra = measure_steps(run, n, device)
        memory, memory_kind = peak()
    return BenchResult(
        stage="upscale", device=str(device), dtype=str(dtype).replace("torch.", ""),
        size=f"{side[1] * 4}x{side[0] * 4}", frames=1, steps=n, seconds=seconds, seconds_per_step=per_frame,
        fixed_seconds=0.0, official_steps=1, peak_memory_bytes=memory, memory_kind=memory_kind, per="frame",
        note=f"{'released' if full else 'tiny'} Stream-DiffVSR, steady cost per frame ({NUM_STEPS} DDIM steps + "
             f"RAFT + decode); the first frame differs by {first_extra:+.2f}s")
