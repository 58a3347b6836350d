"""SDEdit of a long latent video with a short-video model: overlapping chunks denoised in lock-step,
one shared noise tensor, and randomized blending of the overlaps (paper Sec. 4.3, appendix 9.3).

How one solver step goes (``BlendedDenoiser``): every window of the video is predicted from the
*same* whole-video noisy latent, each prediction is turned into a clean estimate x0, and the
windows' x0 are fused along the frame axis with a hard cut inside every overlap: frames before the
cut keep the earlier window's x0, frames from the cut on take the later window's. The solver then
updates the whole video from that fused x0, so the next step's windows all see one consistent
latent. Only one window's activations exist at a time.

Paper vs official code. The paper (Sec. 4.3, Eq. 8) writes the merge on the chunks' denoised
latents x_{t-1}: frames of chunk i-1 before a random cut inside the overlap, frames of chunk i from
it on, a new cut at every step. The official code (and this module) cuts the *predicted clean
latents x0* instead and then takes one DPM-Solver++(2M) SDE step on the whole video. The two agree
where it matters: every chunk reads the same shared x_t and the same shared noise, and the solver
update is per frame affine in (x_t, x0, noise), so cutting x0 or cutting x_{t-1} gives the same
x_{t-1} for a first-order step. They differ only in the second-order term, which here uses the
previous step's *fused* x0 rather than each chunk's own.
The cut: the later window writes from ``start + offset`` with ``offset = randint(0, overlap-1)`` (so
the last frame of every overlap always comes from the later window), a new draw per window per step.

Modes (``sampling.blend.BLEND_MODES``), the paper's ablation (Sec. 4.3):
- ``randomized``: shared noise + a random cut per overlap per step (official, default);
- ``shared_noise``: every window is its own SDEdit run, but all read their init and SDE noise from
  one whole-video draw, so overlapping frames start from, and are driven by, the same noise; the
  finished windows are concatenated with a cut in the middle of each overlap. Nothing is fused
  during sampling, so the windows can drift apart in their overlaps: the seam that randomized
  blending removes;
- ``independent``: every window is its own SDEdit run with its own noise (init and SDE), concatenated
  the same way (naive concatenation).

Everything random is a setting or replayable (``SDEditReplay``): the init noise (``noise`` or a torch
generator seeded with ``seed``), the cuts (``offsets`` recorded per step, or ``random.Random(seed)``),
and the SDE noise (``brownian`` recorded increments, or a source seeded with ``sde_seed``: by default the
official entropy 0 for the Brownian tree, a seed derived from ``seed`` for Gaussian draws).

This lock-step sampler holds the whole video. The refiner's default (Gaussian SDE noise) runs the
same computation as a wavefront with bounded state (``sampling/wavefront.py``), whose draws are keyed
by (seed, step, frame) and (seed, step, overlap) (``sampling/keyed_draws.py``); fed those draws as
replays (``lockstep_draws``), this function gives its result bit for bit. Lock-step stays the path
of the official replay (``sde_noise="brownian"``: one Brownian tree over the whole video, and the
parity fixtures' recorded draws).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ..official import REFINE
from ..progress import ProgressCallback, StepCounter
from ..schedules.prediction import PREDICTION_TYPES, to_x0
from ..schedules.vp_sigmas import VPSigmaTable
from ..seeds import derive_seed
from .blend import BLEND_MODES, Window, chunk_windows, draw_offsets, fuse_hard_cut
from .denoiser import Denoiser
from .dpmpp_sde import BrownianTreeNoise, GaussianStepNoise, ReplayNoise, sample_dpmpp_2m_sde

# (x_vp chunk (B, C, f, h, w), integer timestep) -> network output (guided): the pack's one denoiser shape
ChunkModel = Denoiser
SDE_NOISES = ("brownian", "gaussian")
INITS = ("modelscope", "exact")


def paste_window(out: torch.Tensor, value: torch.Tensor, window: Window, offset: int) -> None:
    """Write one window's frames from ``offset`` on into the whole-video tensor (frame axis 2), as
    ``blend.fuse_hard_cut`` does for all windows at once."""
    fuse_hard_cut([value[:, :, offset:]], [Window(window.start + offset, window.end)], [], dim=2, out=out)


class BlendedDenoiser:
    """``(x, sigma) -> x0`` of the whole video from per-window calls of ``model`` (see module doc).

    ``offsets_for_step(i)`` gives one cut per window after the first. ``on_window(step, k, x0)``
    runs after each window's prediction (progress, cancel, previews); ``observer(step, x_in, x0)``
    after each step (recording for parity checks).
    """

    def __init__(self, model: ChunkModel, table: VPSigmaTable, prediction_type: str, windows: Sequence[Window],
                 offsets_for_step: Callable[[int], Sequence[int]],
                 on_window: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                 observer: Optional[Callable[[int, torch.Tensor, torch.Tensor], None]] = None):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction type {prediction_type!r}; one of {PREDICTION_TYPES}")
        self.model, self.table, self.prediction_type = model, table, prediction_type
        self.windows = list(windows)
        self.offsets_for_step = offsets_for_step
        self.on_window, self.observer = on_window, observer
        self.step = 0
        self.offsets_used: list[list[int]] = []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c_in = 1 / (sigma**2 + 1) ** 0.5
        x_in = x * c_in
        t = self.table.timestep_for_sigma(sigma)
        alpha, sig = (v.to(x.device) for v in self.table.alpha_sigma_at(t))
        offsets = list(self.offsets_for_step(self.step))
        if len(offsets) != len(self.windows) - 1:
            raise ValueError(f"step {self.step}: {len(offsets)} cuts for {len(self.windows)} windows")
        x0_full = torch.empty_like(x)
        for k, window in enumerate(self.windows):
            chunk = x_in[:, :, window.start:window.end]
            output = self.model(chunk, t).to(x.dtype)
            x0 = to_x0(output, chunk, alpha, sig, self.prediction_type)
            paste_window(x0_full, x0, window, 0 if k == 0 else offsets[k - 1])
            if self.on_window is not None:
                self.on_window(self.step, k, x0)
        self.offsets_used.append(offsets)
        if self.observer is not None:
            self.observer(self.step, x_in, x0_full)
        self.step += 1
        return x0_full


def _offset_source(windows, mode, rng: random.Random, recorded: Optional[Sequence[Sequence[int]]]):
    if recorded is not None:
        recorded = [list(map(int, row)) for row in recorded]

        def replay(i: int) -> list[int]:
            row = recorded[i]
            # recorded rows may carry the first window's (always 0) entry, as the official run does
            return row[1:] if len(row) == len(windows) else row

        return replay
    return lambda i: draw_offsets(windows, mode, rng)


@dataclass(frozen=True)
class SDEditSettings:
    """Everything a blended SDEdit run does besides its model and draws: shared by the lock-step
    sampler (``sdedit_windows``) and the wavefront (``sampling/wavefront.py``), so one object gives
    both the same run. Chunking defaults to the official refiner's (``official.REFINE``).

    ``init``: ``"modelscope"`` starts the solver from ``x_vp * sigma_0`` (MS-Vid2Vid-XL's scaling of
    the VP latent by the EDM sigma, kept for parity); ``"exact"`` from ``x_vp / alpha``, the true
    EDM latent at that noise level. ``sde_noise``: ``"brownian"`` (official: a torchsde Brownian tree
    over the whole video; exact official values, but its time and CPU memory grow with the video) or
    ``"gaussian"`` (an independent draw per step; same law, constant cost; the only kind the
    wavefront draws). ``sde_seed``: the SDE noise's seed; None = entropy 0 for the tree (official)
    and a seed derived from ``seed`` for Gaussian draws. ``dtype``: the solver state's precision
    (the network may compute in a lower one).
    """

    t_start: int
    steps: int
    chunk: int = REFINE.chunk
    overlap: int = REFINE.overlap
    mode: str = "randomized"
    seed: int = 0
    sde_seed: Optional[int] = None
    sde_noise: str = "brownian"
    eta: float = 1.0
    s_noise: float = 1.0
    init: str = "modelscope"
    dtype: torch.dtype = torch.float32

    def __post_init__(self):
        if self.mode not in BLEND_MODES:
            raise ValueError(f"unknown blend mode {self.mode!r}; one of {', '.join(BLEND_MODES)}")
        if self.sde_noise not in SDE_NOISES:
            raise ValueError(f"sde_noise must be one of {SDE_NOISES}, got {self.sde_noise!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be 'modelscope' or 'exact', got {self.init!r}")


@dataclass(frozen=True)
class SDEditReplay:
    """Recorded draws to replay instead of drawing (parity with the official run, or the wavefront's
    keyed draws): the initial ``noise``, the cuts ``offsets`` per step, the SDE increments ``brownian``
    per step. Over the whole video, except for ``independent``, whose draws are over the windows laid
    end to end. None: drawn."""

    noise: Optional[torch.Tensor] = None
    offsets: Optional[Sequence[Sequence[int]]] = None
    brownian: Optional[Sequence[torch.Tensor]] = None


def sdedit_windows(
    model: ChunkModel,
    z0: torch.Tensor,
    table: VPSigmaTable,
    settings: SDEditSettings,
    *,
    prediction_type: str,
    replay: SDEditReplay = SDEditReplay(),
    on_step: Optional[ProgressCallback] = None,
    on_window: Optional[Callable[[int, int, torch.Tensor], None]] = None,
    observer: Optional[Callable[[int, torch.Tensor, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """Clean latents (B, C, F, h, w) from clean latents ``z0`` re-noised to ``settings.t_start``.

    ``replay``: recorded draws instead of drawing them (``SDEditReplay``). Progress:
    ``on_step(done, total, None)`` after every window of every step, ``total = steps * windows``;
    raising stops the run. ``on_window(step, k, x0)`` after each window's prediction;
    ``observer(step, x_in, x0)`` after each step (recording for parity checks).
    """
    chunk, overlap, mode, seed, steps = settings.chunk, settings.overlap, settings.mode, settings.seed, settings.steps
    t_start, noise = settings.t_start, replay.noise
    windows = chunk_windows(z0.shape[2], chunk, overlap)
    rng = random.Random(seed)
    separate = mode in ("shared_noise", "independent")  # every window its own run: nothing fused
    if separate:  # the windows laid end to end: no frame of the solver state is shared
        lay_out = _laid_out(windows)
        solver_windows = [Window(k * chunk, (k + 1) * chunk) for k in range(len(windows))]
    else:
        lay_out, solver_windows = (lambda t: t), windows
    work = lay_out(z0).to(settings.dtype)  # the solver state; the network may compute in a lower precision
    # the shape every random draw is made in: the whole video, unless each window draws its own
    draw_shape = tuple(work.shape) if mode == "independent" else tuple(z0.shape)
    shared = lay_out if mode == "shared_noise" else (lambda t: t)

    if noise is None:
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(draw_shape, generator=generator)
    if tuple(noise.shape) != draw_shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {draw_shape}")
    noise = shared(noise.to(work.device, work.dtype))
    alpha0, sigma0_vp = (v.to(work.device) for v in table.alpha_sigma_at(t_start))
    x_vp = alpha0 * work + sigma0_vp * noise
    sigmas = table.sdedit_sigmas(t_start, steps).to(work.device)
    x = x_vp * sigmas[0] if settings.init == "modelscope" else x_vp / alpha0
    del work, noise, x_vp  # long videos: keep only the solver's own whole-video tensors

    counter = StepCounter(steps * len(windows), on_step)

    def window_done(step: int, k: int, x0: torch.Tensor) -> None:
        if on_window is not None:
            on_window(step, k, x0)
        counter.step()

    denoiser = BlendedDenoiser(model, table, prediction_type, solver_windows,
                               _offset_source(solver_windows, mode, rng, replay.offsets), window_done, observer)
    sde_seed = settings.sde_seed
    if replay.brownian is not None:
        source = ReplayNoise(replay.brownian)
    elif not settings.eta:
        source = None
    elif settings.sde_noise == "brownian":
        source = BrownianTreeNoise(torch.empty(draw_shape, device="meta"), sigmas, 0 if sde_seed is None else sde_seed)
    else:
        source = GaussianStepNoise(torch.empty(draw_shape, device="meta"),
                                   derive_seed("sdedit sde noise", seed) if sde_seed is None else sde_seed)
    if source is not None and mode == "shared_noise":
        source = _mapped_noise(source, lambda n: shared(n.to(x.device, x.dtype)))
    latents = sample_dpmpp_2m_sde(denoiser, x, sigmas, source, eta=settings.eta, s_noise=settings.s_noise)

    if separate:
        parts = [latents[:, :, w.start:w.end] for w in solver_windows]
        return fuse_hard_cut(parts, windows, draw_offsets(windows, mode, rng), dim=2)
    return latents


def _laid_out(windows: Sequence[Window]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Whole-video tensor (B, C, F, h, w) -> its windows side by side on the frame axis."""
    return lambda t: torch.cat([t[:, :, w.start:w.end] for w in windows], dim=2)


def _mapped_noise(source, transform):
    """A noise source whose every draw goes through ``transform`` (whole video -> laid-out windows)."""
    return lambda i, sigma, sigma_next: transform(source(i, sigma, sigma_next))
