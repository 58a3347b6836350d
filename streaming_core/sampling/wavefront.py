"""The randomized-blend SDEdit of ``sampling/sdedit.py`` run as a wavefront: same values, bounded state.

Lock-step runs every window at step s before any window at step s+1, so the whole video's latents
live until the end and no frame is final before the last step of the last window. Yet nothing needs
that order: the fused clean estimate x0 of a frame at step s depends only on the windows that cover
it at step s, and the solver update (``dpmpp_2m_sde_step``) is per frame. So window k at step s can
run as soon as every window that covers its frames has run at step s-1, and a frame leaves as soon
as its last step is done. This module always runs the deepest step that is ready, which keeps about
(steps + 1) windows of frames alive whatever the video's length, and hands out final frames while
the start of the video is still being read.

Every random draw is keyed (``sampling/keyed_draws.py``), so the order of work does not change the
values: a lock-step ``sdedit_windows`` run fed ``lockstep_draws`` computes the same video bit for bit
(tests/test_refine_wavefront.py). The modes:
- ``randomized``: the solver frames are the video frames; a new keyed cut per overlap per step;
- ``shared_noise`` / ``independent``: every window is its own run (the windows laid end to end, as
  in ``sdedit_windows``), interleaved the same way; the finished windows are joined with a cut in the
  middle of each overlap.
The official-replay ``brownian`` SDE noise is one whole-video Brownian tree and stays lock-step
(``sdedit_windows``).

The state (``snapshot()``/``state=``) is everything the run needs to continue: the frames alive,
the windows done per step, the clean latents read ahead. A run restored from it yields exactly the
frames the uninterrupted run would have yielded after that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch

from .blend import Window, chunk_windows, draw_offsets
from .dpmpp_sde import dpmpp_2m_sde_step
from .keyed_draws import INIT_PURPOSE, SDE_PURPOSE, blend_cut, frame_noise, sde_seed_of, slot_keys
from .sdedit import ChunkModel, SDEditSettings
from ..schedules.prediction import PREDICTION_TYPES, to_x0
from ..schedules.vp_sigmas import VPSigmaTable

# start frame -> clean latents (B, C, n, h, w) from that frame on, in order, any n per item
LatentSource = Callable[[int], Iterator[torch.Tensor]]
STATE_FORMAT = "wavefront_sdedit/1"


@dataclass
class _Slot:
    """One solver frame: its latent at ``step``, the previous step's x0 and this step's x0 so far."""
    step: int
    x: torch.Tensor
    old: Optional[torch.Tensor] = None
    acc: Optional[torch.Tensor] = None


@dataclass
class _Plan:
    video_windows: list[Window]
    solver_windows: list[Window]  # over solver frames ("slots"): the video frames, or the windows laid out
    video_frame: list[int]  # slot -> video frame
    last_cover: list[int]  # slot -> index of the last solver window covering it
    need: list[int] = field(default_factory=list)  # window k at step s needs windows <= need[k] done at s-1
    owned: list[range] = field(default_factory=list)  # separate modes: the video frames window k gives


def _plan(num_frames: int, chunk: int, overlap: int, mode: str) -> _Plan:
    windows = chunk_windows(num_frames, chunk, overlap)
    if mode == "randomized":
        solver, video_frame = windows, list(range(num_frames))
    else:
        solver = [Window(k * chunk, (k + 1) * chunk) for k in range(len(windows))]
        video_frame = [w.start + j for w in windows for j in range(w.length)]
    last_cover = [0] * solver[-1].end
    for k, w in enumerate(solver):
        for f in range(w.start, w.end):
            last_cover[f] = k
    plan = _Plan(windows, solver, video_frame, last_cover)
    plan.need = [last_cover[w.end - 1] for w in solver]
    if mode != "randomized":  # the fixed middle cuts of the final join (as ``sdedit_windows``)
        cuts = [0] + draw_offsets(windows, mode, None)
        starts = [w.start + c for w, c in zip(windows, cuts)] + [num_frames]
        plan.owned = [range(starts[k], starts[k + 1]) for k in range(len(windows))]
    return plan


class WavefrontSDEdit:
    """``sdedit_windows`` (gaussian SDE noise, keyed draws) as a generator over final latent frames.

    ``latents(start)`` gives the clean latents from video frame ``start`` on; ``num_frames`` their
    count. ``run()`` yields (B, C, n, h, w) latents after every (window, step) unit, n >= 0 final
    frames in video order (n = 0 when that unit finished none). ``on_window(step, k, x0)`` after
    every window's prediction (progress, previews, cancel by raising). ``held_frames``/``max_held``
    count the frames alive (solver frames plus clean latents read ahead).
    """

    def __init__(self, model: ChunkModel, latents: LatentSource, num_frames: int, table: VPSigmaTable,
                 settings: SDEditSettings, *, prediction_type: str,
                 on_window: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                 state: Optional[dict] = None):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction type {prediction_type!r}; one of {PREDICTION_TYPES}")
        if settings.sde_noise != "gaussian":
            raise ValueError("the wavefront draws Gaussian SDE noise keyed by (step, frame): give sde_noise='gaussian' "
                             "(the official Brownian tree is one whole-video draw: use sdedit_windows)")
        t_start, steps, chunk, overlap, mode = (settings.t_start, settings.steps, settings.chunk, settings.overlap,
                                                settings.mode)
        seed, eta, s_noise, init, dtype = settings.seed, settings.eta, settings.s_noise, settings.init, settings.dtype
        self.model, self.latents, self.table = model, latents, table
        self.prediction_type, self.mode, self.seed = prediction_type, mode, int(seed)
        self.sde_seed = sde_seed_of(seed, settings.sde_seed)
        self.steps, self.chunk, self.eta, self.s_noise, self.init, self.dtype = steps, chunk, eta, s_noise, init, dtype
        self.on_window = on_window
        self.num_frames = int(num_frames)
        self.plan = _plan(self.num_frames, chunk, overlap, mode)
        self.keys = slot_keys(self.plan.video_windows, mode)
        self.sigmas = table.sdedit_sigmas(t_start, steps)
        self.alpha0, self.sigma0_vp = table.alpha_sigma_at(t_start)
        self.h_last = [None] * (steps + 1)  # h of the previous step, for the second-order term
        for s in range(steps):
            self.h_last[s + 1] = self.h_last[s] if self.sigmas[s + 1] == 0 else self.sigmas[s].log() - self.sigmas[s + 1].log()
        self.settings = {"format": STATE_FORMAT, "num_frames": self.num_frames, "chunk": chunk, "overlap": overlap,
                         "mode": mode, "seed": self.seed, "sde_seed": self.sde_seed, "steps": steps,
                         "t_start": int(t_start), "eta": float(eta), "s_noise": float(s_noise), "init": init,
                         "prediction_type": prediction_type, "dtype": str(dtype)}
        self.done = [0] * steps  # windows done per step
        self.slots: dict[int, _Slot] = {}
        self.clean: dict[int, torch.Tensor] = {}  # video frame -> clean latent read ahead, (B, C, h, w)
        self.read = 0  # video frames taken from the source
        self.emitted = 0  # video frames handed out
        self.pending_out: dict[int, torch.Tensor] = {}  # separate modes: final frames not yet in order
        self.max_held = 0
        self._source: Optional[Iterator[torch.Tensor]] = None
        if state is not None:
            self._restore(state)

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def held_frames(self) -> int:
        return len(self.slots) + len(self.clean) + len(self.pending_out)

    @property
    def windows_done(self) -> int:
        """(window, step) units done."""
        return sum(self.done)

    @property
    def total_units(self) -> int:
        return self.steps * len(self.plan.solver_windows)

    def _count_held(self) -> None:
        self.max_held = max(self.max_held, self.held_frames)

    # -- input -------------------------------------------------------------------------------------
    def _read_until(self, frame: int) -> None:
        """Clean latents up to video frame ``frame`` (exclusive) in ``self.clean``."""
        while self.read < frame:
            if self._source is None:
                self._source = iter(self.latents(self.read))
            part = next(self._source, None)
            if part is None:
                raise ValueError(f"the latent source ended at frame {self.read} of {self.num_frames}")
            for j in range(part.shape[2]):
                if self.read < self.num_frames:
                    self.clean[self.read] = part[:, :, j].to(self.dtype)
                self.read += 1
            self._count_held()

    def _admit(self, k: int) -> None:
        """Create the solver frames of window k at step 0 (re-noised clean latents)."""
        window = self.plan.solver_windows[k]
        frames = [self.plan.video_frame[f] for f in range(window.start, window.end) if f not in self.slots]
        self._read_until(max(frames) + 1 if frames else 0)
        sigma0 = self.sigmas[0]
        for f in range(window.start, window.end):
            if f in self.slots:
                continue
            z0 = self.clean[self.plan.video_frame[f]]
            noise = frame_noise(INIT_PURPOSE, self.seed, self.keys[f], z0.shape).to(z0.device, z0.dtype)
            x_vp = self.alpha0.to(z0.device) * z0 + self.sigma0_vp.to(z0.device) * noise
            x = x_vp * sigma0.to(z0.device) if self.init == "modelscope" else x_vp / self.alpha0.to(z0.device)
            self.slots[f] = _Slot(0, x)
        # clean latents no later window reads (windows are admitted in order)
        nxt = self.plan.video_windows[k + 1].start if k + 1 < len(self.plan.video_windows) else self.num_frames
        if self.mode == "randomized":
            nxt = window.end
        for v in [v for v in self.clean if v < nxt]:
            del self.clean[v]
        self._count_held()

    # -- one unit ----------------------------------------------------------------------------------
    def _ready(self, s: int) -> bool:
        k = self.done[s]
        if k >= len(self.plan.solver_windows):
            return False
        return True if s == 0 else self.done[s - 1] > self.plan.need[k]

    def _run(self, k: int, s: int) -> list[int]:
        """Window k at step s; returns the solver frames that became final (left the last step)."""
        if s == 0:
            self._admit(k)
        window = self.plan.solver_windows[k]
        sigma = self.sigmas[s]
        c_in = 1 / (sigma**2 + 1) ** 0.5
        t = self.table.timestep_for_sigma(sigma)
        x = torch.stack([self.slots[f].x for f in range(window.start, window.end)], dim=2)
        alpha, sig = (v.to(x.device) for v in self.table.alpha_sigma_at(t))
        x_in = x * c_in
        output = self.model(x_in, t).to(x.dtype)
        x0 = to_x0(output, x_in, alpha, sig, self.prediction_type)
        skip = 0
        if self.mode == "randomized" and k > 0:
            skip = blend_cut(self.seed, s, k - 1, self.plan.solver_windows[k - 1].end - window.start)
        for j in range(skip, window.length):
            self.slots[window.start + j].acc = x0[:, :, j]
        if self.on_window is not None:
            self.on_window(s, k, x0)
        ready = [f for f in range(window.start, window.end) if self.plan.last_cover[f] == k]
        self._update(ready, s)
        self.done[s] += 1
        return ready if s == self.steps - 1 else []

    def _update(self, frames: Sequence[int], s: int) -> None:
        """The solver step of ``frames`` (their x0 at step s is final): one per-element update over them."""
        if not frames:
            return
        slots = [self.slots[f] for f in frames]
        x = torch.stack([p.x for p in slots], dim=2)
        denoised = torch.stack([p.acc for p in slots], dim=2)
        old = torch.stack([p.old for p in slots], dim=2) if slots[0].old is not None else None
        sigma, sigma_next = self.sigmas[s], self.sigmas[s + 1]

        def noise() -> torch.Tensor:
            shape = tuple(x[:, :, 0].shape)
            return torch.stack([frame_noise(SDE_PURPOSE, self.sde_seed, self.keys[f], shape, step=s) for f in frames], dim=2)

        new, _ = dpmpp_2m_sde_step(x, denoised, old, sigma.to(x.device), sigma_next.to(x.device),
                                   None if self.h_last[s] is None else self.h_last[s].to(x.device),
                                   noise if self.eta else None, eta=self.eta, s_noise=self.s_noise)
        for j, p in enumerate(slots):
            p.x, p.old, p.acc, p.step = new[:, :, j], denoised[:, :, j], None, s + 1

    # -- output ------------------------------------------------------------------------------------
    def _emit(self, final: Sequence[int]) -> torch.Tensor:
        """Final solver frames -> the video frames they give, in order (B, C, n, h, w)."""
        out = []
        for f in final:
            slot = self.slots.pop(f)
            v = self.plan.video_frame[f]
            if self.mode != "randomized":
                k = self.plan.last_cover[f]
                if v not in self.plan.owned[k]:
                    continue
            self.pending_out[v] = slot.x
        while self.emitted in self.pending_out:
            out.append(self.pending_out.pop(self.emitted))
            self.emitted += 1
        return torch.stack(out, dim=2) if out else None

    def run(self) -> Iterator[Optional[torch.Tensor]]:
        """Yield after every (window, step) unit: the latents that became final, or None."""
        windows = len(self.plan.solver_windows)
        while self.done[-1] < windows:
            s = next(s for s in reversed(range(self.steps)) if self._ready(s))
            final = self._run(self.done[s], s)
            self._count_held()
            yield self._emit(final) if final else None

    # -- state -------------------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, metadata) of the state between two units (CPU copies)."""
        tensors, slots = {}, []
        for f, p in self.slots.items():
            tensors[f"slot.{f}.x"] = p.x.detach().cpu().contiguous()
            if p.old is not None:
                tensors[f"slot.{f}.old"] = p.old.detach().cpu().contiguous()
            if p.acc is not None:
                tensors[f"slot.{f}.acc"] = p.acc.detach().cpu().contiguous()
            slots.append([f, p.step])
        for v, z in self.clean.items():
            tensors[f"clean.{v}"] = z.detach().cpu().contiguous()
        for v, z in self.pending_out.items():
            tensors[f"pending.{v}"] = z.detach().cpu().contiguous()
        meta = {"settings": self.settings, "done": self.done, "slots": slots, "read": self.read,
                "emitted": self.emitted}
        return tensors, meta

    def _restore(self, state: dict) -> None:
        tensors, meta = state["tensors"], state["meta"]
        if meta["settings"] != self.settings:
            differs = sorted(k for k in set(meta["settings"]) | set(self.settings)
                             if meta["settings"].get(k) != self.settings.get(k))
            raise ValueError(f"the saved sampler state has other settings ({', '.join(differs)})")
        device = self.alpha0.device

        def get(name):
            value = tensors.get(name)
            return None if value is None else value.to(device)

        self.done = [int(d) for d in meta["done"]]
        for f, step in meta["slots"]:
            self.slots[int(f)] = _Slot(int(step), get(f"slot.{f}.x"), get(f"slot.{f}.old"), get(f"slot.{f}.acc"))
        for name, value in tensors.items():
            if name.startswith("clean."):
                self.clean[int(name.split(".")[1])] = value
            elif name.startswith("pending."):
                self.pending_out[int(name.split(".")[1])] = value
        self.read, self.emitted = int(meta["read"]), int(meta["emitted"])


def wavefront_sdedit(model: ChunkModel, z0: torch.Tensor, table: VPSigmaTable, settings: SDEditSettings, *,
                     prediction_type: str) -> Iterator[torch.Tensor]:
    """``WavefrontSDEdit`` over a latent video already in memory (B, C, F, h, w); yields final parts."""
    source = lambda start: iter([z0[:, :, start:]])  # noqa: E731 - a one-part source
    for part in WavefrontSDEdit(model, source, z0.shape[2], table, settings, prediction_type=prediction_type).run():
        if part is not None:
            yield part

