"""Refine (enhance) a long low-resolution video with a short-video model: the paper's third stage.

frames -> fit to the enhancer's native resolution (padded as it was trained) -> VAE latents in frame
slices (and spatial tiles at 720p) -> SDEdit from ``strength`` with overlapping chunks and randomized
blending (``sampling/sdedit.py``) -> decode in slices -> padding removed.

Differences from the official driver, on purpose: any frame count >= one chunk works (the last
chunk moves back to end at the last frame; the official trims the video to 16k + 8 frames), the
black bars are removed from the output, and every random draw comes from ``seed`` (the official
takes the blend cuts from Python's global ``random``), keyed by what it belongs to (frame, step,
overlap, VAE slice) so the default path streams: ``refine_stream`` reads the video lazily, runs the
wavefront sampler (``sampling/wavefront.py``) and yields frames as they are final, with bounded
memory and an optional resume state (``refine_state.py``). ``sde_noise="brownian"`` (official
replay) stays lock-step over the whole video.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, Optional

import torch

from .. import validation
from ..benchmark import BenchResult, measure_steps, peak_memory
from ..errors import InputError
from ..models.enhancer import Enhancer, NativeResolution, crop_frames, place_frames, plan_frames
from ..official import REFINE
from ..progress import LatentPreview, ProgressCallback, StepCounter
from ..sampling.blend import BLEND_MODES, chunk_windows
from ..sampling.guided_model import enhancer_chunk_model
from ..sampling.sdedit import SDE_NOISES, SDEditSettings, sdedit_windows
from ..sampling.wavefront import WavefrontSDEdit
from ..schedules.vp_sigmas import strength_to_timestep
from ..seeds import derive_seed
from ..tiny.enhancer import TINY_RESOLUTION, build_benchmark_enhancer
from ..video_io import iter_video_frames, to_uint8, video_info
from .long_video import model_fingerprint
from .refine_state import RefineCheckpoint, RefineStateFolder, digest_file, digest_frames

@dataclass(frozen=True)
class RefineSettings:
    """Everything that decides a refined video besides the enhancer, the video and the prompts;
    official values by default (``official.REFINE``). Checked when made, so a bad setting is refused
    before any frame is read or model loaded (the CLI and the node make one first).

    ``strength``: how far to re-noise (fraction of the 1000-step schedule; the official one
    re-noises to ``official.REFINE.start_timestep``).
    ``seed`` draws the initial noise, the blend cuts and the VAE posterior sample; ``sde_seed`` the SDE
    noise (None: ``seed`` for gaussian, the official entropy 0 for brownian). ``sde_noise``:
    ``"gaussian"`` (keyed draws, streamed and resumable) or ``"brownian"`` (the official tree,
    lock-step). ``resolution``: the canvas (None: the enhancer's own); ``guidance_rescale``: None =
    the enhancer's.
    """

    mode: str = "randomized"
    chunk: int = REFINE.chunk
    overlap: int = REFINE.overlap
    strength: float = REFINE.strength
    steps: int = REFINE.steps
    guidance: float = REFINE.guidance
    seed: int = 0
    sde_seed: Optional[int] = None
    sde_noise: str = "gaussian"
    resolution: Optional[NativeResolution] = None
    guidance_rescale: Optional[float] = None

    def __post_init__(self):
        if self.mode not in BLEND_MODES:
            raise InputError(f"unknown mode {self.mode!r}: use one of {', '.join(BLEND_MODES)}.")
        official = f"the official setting is chunk {REFINE.chunk}, overlap {REFINE.overlap}"
        chunk = validation.whole("chunk", self.chunk, low=2, fix=f"the official chunk is {REFINE.chunk} frames")
        overlap = self.overlap
        if not 0 <= validation.whole("overlap", overlap, fix=f"the official overlap is {REFINE.overlap}") < chunk:
            raise InputError(f"overlap ({overlap}) must be at least 0 and smaller than the chunk ({chunk}), or the "
                             f"chunks would not advance: lower the overlap ({official}).")
        validation.number("strength", self.strength, low=0.0, high=1.0, low_open=True,
                          fix=f"the official {REFINE.strength} re-noises to t={REFINE.start_timestep} of 1000")
        validation.steps(self.steps, default_hint=f"the official value is {REFINE.steps}")
        validation.guidance(self.guidance)
        validation.seed(self.seed)
        if self.sde_seed is not None:
            validation.seed(self.sde_seed, "SDE seed")
        if self.sde_noise not in SDE_NOISES:
            raise InputError(f"unknown sde_noise {self.sde_noise!r}: use one of {', '.join(SDE_NOISES)}.")
        if self.resolution is not None:
            height = validation.whole("height", self.resolution.height, low=1, fix="0 in the node: the enhancer's own")
            width = validation.whole("width", self.resolution.width, low=1, fix="0 in the node: the enhancer's own")
            validation.canvas(height, width, chunk, "canvas frames")

    def sdedit(self, enhancer: Enhancer) -> SDEditSettings:
        """The sampler's settings for this enhancer (its schedule turns the strength into a timestep)."""
        return SDEditSettings(strength_to_timestep(self.strength, enhancer.table), self.steps, chunk=self.chunk,
                              overlap=self.overlap, mode=self.mode, seed=self.seed, sde_seed=self.sde_seed,
                              sde_noise=self.sde_noise, init=enhancer.init)

    def identity(self, prompt: str, negative_prompt: str) -> dict:
        """What a resume state records and an "auto" state name hashes (JSON values)."""
        resolution = self.resolution
        return {"prompt": prompt, "negative_prompt": negative_prompt, "mode": self.mode, "chunk": self.chunk,
                "overlap": self.overlap, "strength": float(self.strength), "steps": self.steps,
                "guidance": float(self.guidance), "seed": int(self.seed), "sde_seed": self.sde_seed,
                "sde_noise": self.sde_noise, "guidance_rescale": self.guidance_rescale,
                "resolution": None if resolution is None else [resolution.width, resolution.height, resolution.pad]}


def check_frame_count(frames: int, settings: RefineSettings) -> None:
    """A video of ``frames`` frames holds at least one chunk."""
    if frames < settings.chunk:
        raise InputError(f"the video has {frames} frames, fewer than one chunk of {settings.chunk}: give a longer "
                         f"video or a smaller chunk (at most {frames}).")


def _check_frames(frames: torch.Tensor, settings: RefineSettings) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be a (frames, height, width, 3) tensor, got {shape}.")
    check_frame_count(frames.shape[0], settings)


def _unit_frames(frames: torch.Tensor) -> torch.Tensor:
    if frames.dtype == torch.uint8:
        return frames.float() / 255
    frames = frames.float()
    if frames.numel() and (frames.min() < -1e-3 or frames.max() > 1 + 1e-3):
        raise InputError(f"frame values must lie in 0..1 (got {frames.min():.3g}..{frames.max():.3g}); "
                         f"convert 0..255 images to float / 255 first.")
    return frames.clamp(0, 1)


def refine(enhancer: Enhancer, frames: torch.Tensor, prompt: str, negative_prompt: str = "",
           settings: RefineSettings = RefineSettings(), *, on_step: Optional[ProgressCallback] = None,
           previews: bool = True) -> torch.Tensor:
    """(F, H, W, 3) frames in 0..1 -> (F, H', W', 3) enhanced frames in 0..1 (float32, CPU).

    H' x W' is the input fitted into the enhancer's native resolution (MS-Vid2Vid-XL: 256x256 ->
    720x720), or into ``settings.resolution`` if given. ``on_step(done, total, preview)`` runs after
    every VAE slice and every chunk of every step; raise in it to stop. ``refine_stream`` of frames
    in memory, gathered.
    """
    _check_frames(frames, settings)
    out, done = None, 0
    for part in refine_stream(enhancer, frames_source(_unit_frames(frames)), prompt, negative_prompt, settings,
                              on_step=on_step, previews=previews):
        if out is None:  # filled slice by slice: a long HD video is held once, not twice as with a cat
            out = part.new_empty((frames.shape[0], *part.shape[1:]))
        out[done:done + part.shape[0]] = part
        done += part.shape[0]
    return out


# -- streaming ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameSource:
    """A video the refiner reads lazily: ``read(start)`` yields (n, H, W, 3) frames (uint8, or float in
    0..1) from frame ``start`` to the end, in order. ``fingerprint`` identifies the pixels (a resume
    state refuses another video); ``fps`` is carried through for writers."""

    num_frames: int
    height: int
    width: int
    fps: Optional[Fraction | float]
    fingerprint: str
    read: Callable[[int], Iterator[torch.Tensor]]


def frames_source(frames: torch.Tensor, fps: Optional[Fraction | float] = None, slice_frames: int = 16) -> FrameSource:
    """A source over an (F, H, W, 3) batch already in memory (an IMAGE)."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be a (frames, height, width, 3) tensor, got {shape}.")
    fingerprint = digest_frames(frames[a:a + slice_frames] for a in range(0, frames.shape[0], slice_frames))
    return FrameSource(int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2]), fps, fingerprint,
                       lambda start: (frames[a:a + slice_frames] for a in range(start, frames.shape[0], slice_frames)))


def file_source(path: str | os.PathLike, slice_frames: int = 16) -> FrameSource:
    """A source over a video file, decoded lazily (PyAV); its fingerprint is a hash of the file's bytes."""
    info = video_info(path)
    num = int(info["frames"] or 0)
    if num <= 0:  # the container does not say: count by decoding once (no frame is kept)
        num = sum(1 for _ in iter_video_frames(path))

    def read(start: int) -> Iterator[torch.Tensor]:
        batch = []
        for frame in iter_video_frames(path, start=start):
            batch.append(frame)
            if len(batch) == slice_frames:
                yield torch.stack(batch)
                batch = []
        if batch:
            yield torch.stack(batch)

    return FrameSource(num, int(info["height"]), int(info["width"]), info["fps"], digest_file(path), read)


def _identity(enhancer: Enhancer, source: FrameSource, settings: dict) -> dict:
    model = "/".join(model_fingerprint(m) for m in (enhancer.unet, enhancer.vae, enhancer.text_encoder))
    return {"video": f"{source.fingerprint}:{source.num_frames}:{source.width}x{source.height}",
            "model": f"{enhancer.kind}:{model}:{enhancer.dtype}", "settings": settings}


def refine_state_name(enhancer: Enhancer, source: FrameSource, prompt: str, negative_prompt: str = "",
                      settings: RefineSettings = RefineSettings()) -> str:
    """A state folder name that changes with everything that decides the output (an "auto" run name)."""
    identity = _identity(enhancer, source, settings.identity(prompt, negative_prompt))
    return "refine-" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def check_stream_settings(source: FrameSource, settings: RefineSettings, state_dir=None, save_every: int = 4) -> None:
    """Everything ``refine_stream`` checks that needs no model (call it before loading one)."""
    if not isinstance(source, FrameSource):
        raise InputError(f"the video must be a FrameSource (frames_source / file_source), got {type(source).__name__}.")
    check_frame_count(source.num_frames, settings)
    if state_dir is not None and settings.sde_noise == "brownian":
        raise InputError("a resumable refine needs sde_noise 'gaussian' (the official Brownian tree is one "
                         "whole-video draw, run lock-step): choose gaussian, or run without a state folder.")
    if save_every < 1:
        raise InputError(f"save_every must be at least 1 window, got {save_every}.")


@dataclass
class _Job:
    """One refine run: what every path of it reads."""

    enhancer: Enhancer
    source: FrameSource
    plan: object  # models.enhancer.FramePlan
    prompt: str
    negative_prompt: str
    settings: RefineSettings
    on_step: Optional[ProgressCallback]
    previews: bool

    def chunk_model(self):
        cond, uncond = self.enhancer.encode_prompts(self.prompt, self.negative_prompt)
        return enhancer_chunk_model(self.enhancer, cond, uncond, self.settings.guidance,
                                    self.settings.guidance_rescale)

    def window_reporter(self, counter: StepCounter):
        """``on_window`` of the samplers: one progress unit per (window, step), the x0 as preview."""
        def on_window(step: int, k: int, x0: torch.Tensor) -> None:
            counter.step(LatentPreview(x0) if self.previews else None)

        return on_window


@torch.no_grad()
def refine_stream(
    enhancer: Enhancer,
    source: FrameSource,
    prompt: str,
    negative_prompt: str = "",
    settings: RefineSettings = RefineSettings(),
    *,
    on_step: Optional[ProgressCallback] = None,
    previews: bool = True,
    state_dir: Optional[str | os.PathLike] = None,
    save_every: int = 4,
    keep_state: bool = False,
) -> Iterator[torch.Tensor]:
    """Refine a video read lazily from ``source``, yielding (n, H', W', 3) float32 CPU frames in 0..1 in
    order as they are final (the frames are as ``refine``'s).

    ``settings.sde_noise="gaussian"`` (default) runs the wavefront sampler (``sampling/wavefront.py``):
    RAM and VRAM stay about (steps + 2) windows whatever the length, and the first frames are written
    while the video is still being read. Its draws are keyed: initial noise by (seed, frame), SDE noise
    by (sde_seed, step, frame), cuts by (seed, step, overlap), the VAE posterior by (seed, first frame
    of the VAE slice), so the output equals a lock-step run fed the same draws and a resumed run.
    ``"brownian"``: the official Brownian tree over the whole video, bit-identical to the official
    code; lock-step (``sdedit_windows``): it reads the whole video first and holds it.

    ``state_dir``: a resume state folder (``refine_state.py``), saved every ``save_every`` windows; if
    it holds a state of this same video, model and settings, the run continues from it (the finished
    frames stored there come first); another run's state is refused with what differs. With a state
    folder every frame is rounded to k/255 (what is stored), so resumed equals uninterrupted exactly.
    The folder is removed after a finished run unless ``keep_state``.
    ``on_step(done, total, preview)`` after every VAE slice and every (window, step); raise to stop.
    Everything is checked before any work starts (the checks run at the call, not at the first frame).
    """
    check_stream_settings(source, settings, state_dir, save_every)
    plan = plan_frames(source.height, source.width, settings.resolution or enhancer.resolution, enhancer.vae_factor)
    job = _Job(enhancer, source, plan, prompt, negative_prompt, settings, on_step, previews)
    if settings.sde_noise == "brownian":  # the official replay: one whole-video Brownian tree, so it stays lock-step
        return _refine_lockstep(job)
    folder = None if state_dir is None else RefineStateFolder(state_dir)
    identity = _identity(enhancer, source, settings.identity(prompt, negative_prompt))
    resume = folder.load(identity) if folder is not None and folder.exists() else None  # refused here if foreign
    return _refine_wavefront(job, folder, identity, resume, save_every, keep_state)


def _vae_slices(source: FrameSource, enhancer: Enhancer, plan, seed: int, counter: StepCounter):
    """start frame -> clean latents (1, C, n, h, w) per VAE slice from that frame on (a LatentSource)."""
    size = max(1, enhancer.vae_slice)

    def latents(start: int) -> Iterator[torch.Tensor]:
        pending, at, seen = [], start, start
        for part in source.read(start):
            pending.append(_unit_frames(part))
            seen += part.shape[0]
            while sum(p.shape[0] for p in pending) >= size or (seen >= source.num_frames and pending):
                pixels = torch.cat(pending)
                take, pending = pixels[:size], [pixels[size:]] if pixels.shape[0] > size else []
                generator = torch.Generator().manual_seed(derive_seed("refine vae posterior", seed, at))
                z = enhancer.encode(place_frames(take, plan), generator)
                counter.step()
                at += take.shape[0]
                yield z
        if at < source.num_frames:
            raise InputError(f"the video ended after {at} frames; it was announced with {source.num_frames}. "
                             f"Re-encode the file (its frame count is wrong) and try again.")

    return latents


@torch.no_grad()
def _refine_wavefront(job: _Job, folder: Optional[RefineStateFolder], identity: dict,
                      resume: Optional[RefineCheckpoint], save_every: int, keep_state: bool) -> Iterator[torch.Tensor]:
    enhancer, settings = job.enhancer, job.settings
    num, size = job.source.num_frames, max(1, enhancer.vae_slice)
    windows = len(chunk_windows(num, settings.chunk, settings.overlap))
    slices = math.ceil(num / size)
    counter = StepCounter(2 * slices + settings.steps * windows, job.on_step)
    model = job.chunk_model()

    state, decode, parts = None, [], 0
    if resume is not None:
        state = {"tensors": {k: v for k, v in resume.tensors.items() if not k.startswith("decode.")},
                 "meta": resume.meta["sampler"]}
        decode = [resume.tensors[f"decode.{i}"].to(enhancer.device) for i in range(resume.meta["decode"])]
        parts = int(resume.meta["parts"])
    sampler = WavefrontSDEdit(model, _vae_slices(job.source, enhancer, job.plan, settings.seed, counter), num,
                              enhancer.table, settings.sdedit(enhancer), prediction_type=enhancer.prediction_type,
                              on_window=job.window_reporter(counter), state=state)
    if resume is not None:
        counter.done = math.ceil(sampler.read / size) + parts + sampler.windows_done
        yield from folder.iter_parts(parts)

    def finish(latents: list) -> torch.Tensor:
        nonlocal parts
        pixels = crop_frames(enhancer.decode(torch.cat(latents, dim=2)), job.plan)
        counter.step()
        if folder is not None:
            pixels = to_uint8(pixels).float() / 255.0
            folder.save_part(parts, pixels)
        parts += 1
        return pixels

    def save() -> None:
        tensors, meta = sampler.snapshot()
        tensors.update({f"decode.{i}": z for i, z in enumerate(decode)})
        folder.save(RefineCheckpoint(tensors, {"identity": identity, "sampler": meta, "parts": parts,
                                               "decode": len(decode)}))

    admitted = sampler.done[0]
    for part in sampler.run():
        if part is not None:
            decode.extend(part[:, :, j:j + 1] for j in range(part.shape[2]))
            while len(decode) >= size:
                out, decode = finish(decode[:size]), decode[size:]
                yield out
        if folder is not None and sampler.done[0] != admitted and sampler.done[0] % save_every == 0:
            admitted = sampler.done[0]
            save()
    if decode:
        yield finish(decode)
    if folder is not None and not keep_state:
        folder.remove()


@torch.no_grad()
def _refine_lockstep(job: _Job) -> Iterator[torch.Tensor]:
    """The official-replay path (``sde_noise="brownian"``): one whole-video Brownian tree, lock-step."""
    enhancer, settings = job.enhancer, job.settings
    num, size = job.source.num_frames, max(1, enhancer.vae_slice)
    windows = chunk_windows(num, settings.chunk, settings.overlap)
    counter = StepCounter(2 * math.ceil(num / size) + settings.steps * len(windows), job.on_step)
    z0 = torch.cat(list(_vae_slices(job.source, enhancer, job.plan, settings.seed, counter)(0)), dim=2)
    model = job.chunk_model()
    latents = sdedit_windows(model, z0, enhancer.table, settings.sdedit(enhancer),
                             prediction_type=enhancer.prediction_type, on_window=job.window_reporter(counter))
    del z0
    for part in latents.split(size, dim=2):
        pixels = crop_frames(enhancer.decode(part), job.plan)
        counter.step()
        yield pixels


# -- benchmark (the ``bench`` command's contract, see ``streaming_core.benchmark``) -------------------------
def benchmark(*, full: bool = False, device: str = "cpu", dtype: Optional[torch.dtype] = None,
              steps: Optional[int] = None, kind: str = "ms_vid2vid_xl", frames: int = 40, chunk: int = REFINE.chunk,
              overlap: int = REFINE.overlap, seed: int = 0):
    """Seconds per frame and peak memory of ``refine`` with random weights, split into a per-step and
    a fixed part (VAE, text) by timing a 1-step and a ``steps``-step run.

    ``full=False``: the tiny enhancer on a tiny canvas (runs anywhere). ``full=True``: the released
    architecture built on ``device`` (MS-Vid2Vid-XL's 1.4B UNet, the ViT-H text tower, the SD VAE; or a
    zeroscope-size UNet3D), a 256 px input refined to 720x720 on the 1280x720 canvas - meant for a GPU.
    40 frames = two official chunks with the official overlap (``official.REFINE``).
    """
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
        settings = RefineSettings(steps=n, chunk=chunk, overlap=overlap, seed=seed, resolution=resolution)
        out = refine(enhancer, video, "a benchmark prompt", settings=settings, previews=False)
        out_size[:] = [f"{out.shape[2]}x{out.shape[1]}"]

    with peak_memory(device) as peak:
        seconds, per_step, fixed = measure_steps(run, steps, device)
        memory, memory_kind = peak()
    windows = len(chunk_windows(frames, chunk, overlap))
    return BenchResult(
        stage="refine", device=str(device), dtype=str(dtype).replace("torch.", ""), size=out_size[0], frames=frames,
        steps=steps, seconds=seconds, seconds_per_step=per_step, fixed_seconds=fixed, official_steps=REFINE.steps,
        peak_memory_bytes=memory, memory_kind=memory_kind,
        note=f"{kind}{' full size' if full else ' tiny'}, {windows} chunks of {chunk} (overlap {overlap}), "
             f"canvas {resolution.width}x{resolution.height}")

