"""The Chunk Loop: a long video from an initial chunk (or any video) by repeated CAM extension.

Bookkeeping (official, spec §4.1): chunk 0 is the first 16 frames (the stock ModelScope chunk, or
any video given as the start); every extension conditions on the last 8 frames of the video so far,
generates 16 and keeps its frames 8..15, so each adds 8 frames. Whole chunks are generated and the
result is trimmed to the requested length, so any length works (the official code rounds down to
16 + 8k and needs at least 16).

Prompts: one prompt, or one per *generated* chunk in order (with the initial chunk, the first prompt
is its prompt; when extending a given video, the first prompt is the first extension's). With fewer
prompts than chunks the last prompt repeats.

Seeds: the seed controls every draw. ``rng="per_chunk"`` (default) gives chunk ``k`` its own CPU
generator seeded from (seed, k), the initial chunk the seed itself: a chunk's noise depends only on
the seed and its index, so results are the same on every device, for every target length, and after
a resume. ``rng="official"`` draws all extensions from one CPU generator seeded with ``seed`` in
turn, as the official code does with its fixed seed 33 (whose state the resume state then carries).

Memory: only the chunk being generated, its 8 conditioning frames and the anchor live on the model's
device. Finished frames go to ``output_device`` (host) as each chunk ends, and ``on_chunk`` receives
them with a ``LoopState`` to save, so long runs can stream frames to a file (``keep_frames=False``)
and resume after an interruption (``resume=``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .. import validation
from ..errors import InputError
from ..progress import ProgressCallback, StepCounter, all_but_last
from ..seeds import derive_seed
from . import extend as extend_step
from .extend import ExtensionSettings
from .checks import CONDITIONING_FRAMES, CHUNK_FRAMES, NEW_FRAMES_PER_CHUNK, check_image_batch, check_size
from .frames import as_image_batch, fit_image, image_to_signed, unit_to_image
from .initial_chunk import InitialChunkSettings, generate_initial_chunk

STATE_VERSION = 1


@dataclass
class Anchor:
    """The APM conditioning of a video: the anchor frame(s) and their tokens, encoded once and used
    by every chunk (what the Anchor APM Encoder node hands to the Chunk Loop)."""

    frames: torch.Tensor  # (Fa, H, W, 3) in 0..1, CPU float32: kept in the resume state
    tokens: torch.Tensor  # (1, 16, D) APM tokens of the frames (averaged over Fa after CLIP)
    grey_tokens: torch.Tensor  # (1, 16, D) APM tokens of a mid-grey frame (the unconditional anchor)

    @property
    def source(self) -> str:
        """Identifies the anchor in the resume parameters."""
        data = self.frames.float().cpu().contiguous().numpy().tobytes()
        return "image:" + hashlib.sha256(data).hexdigest()[:16]


@torch.no_grad()
def encode_anchor(model, image: torch.Tensor, height: Optional[int] = None, width: Optional[int] = None) -> Anchor:
    """CLIP + resampler tokens of an anchor image (H, W, 3) or frames (Fa, H, W, 3) in 0..1. With
    ``height``/``width`` the image is first fitted to the video's size (``frames.fit_image``: centre
    crop to the aspect ratio, then resize), so it reaches CLIP as a video frame would."""
    frames = as_image_batch(image) if height is None else fit_image(image, height, width)
    frames = frames.detach().float().cpu()
    tokens = model.anchor_tokens(image_to_signed(frames.to(model.device))[None])
    return Anchor(frames, tokens, model.grey_anchor_tokens(batch=1))


def _as_anchor(model, anchor, height: int, width: int) -> Optional[Anchor]:
    """An ``Anchor`` for a video of ``height`` x ``width`` from what the caller gave (None stays None:
    frame 0 is encoded later). An ``Anchor`` encoded at another size (e.g. by the Anchor node before it
    knew the video) is re-encoded through the same rule, so it reaches CLIP exactly as an image would."""
    if anchor is None:
        return None
    if isinstance(anchor, Anchor):
        if tuple(anchor.frames.shape[1:3]) == (height, width):
            return anchor
        anchor = anchor.frames
    return encode_anchor(model, anchor, height, width)


# -- state -----------------------------------------------------------------------------------------
@dataclass
class LoopState:
    """Everything the loop needs to continue after a chunk; tensors on the CPU, float32.

    The frames themselves are not part of it: whoever stores the state stores the frames (the
    resume helper writes them next to it); ``frames_done`` says how many there must be.
    """

    chunks_done: int  # chunks in the video so far, the start (initial chunk or given video) included
    frames_done: int  # frames in the video so far, the last chunk untrimmed
    cond_frames: torch.Tensor  # (8, H, W, 3) the last 8 frames, exactly as the next chunk sees them
    anchor: torch.Tensor  # (Fa, H, W, 3) the anchor frame(s) the APM tokens come from
    params: dict  # settings, size, start kind, model fingerprint: must match to resume
    rng_state: Optional[torch.Tensor] = None  # rng="official": the generator state after the last chunk
    steps_done: int = 0  # denoising steps of the whole run so far (progress continues from here)


@dataclass
class ChunkDone:
    """What ``on_chunk`` receives after each finished chunk."""

    index: int  # chunk index in the video (0 = the first chunk)
    first_frame: int  # video index of frames[0]
    frames: torch.Tensor  # (n, H, W, 3) the chunk's new frames on output_device, untrimmed
    keep: int  # how many of them fall within the requested length (the rest exist only for resuming)
    state: LoopState


ChunkCallback = Callable[[ChunkDone], None]


def extensions_needed(start_frames: int, target_frames: int) -> int:
    """Extension chunks to reach ``target_frames`` from a video of ``start_frames``."""
    return max(0, math.ceil((target_frames - start_frames) / NEW_FRAMES_PER_CHUNK))


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index``: the seed itself for chunk 0, a hash of (seed, index) after."""
    if index == 0:
        return seed
    return derive_seed("streamingt2v chunk seed", seed, index)


def chunk_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(chunk_seed(seed, index))


@torch.no_grad()
def model_fingerprint(module: torch.nn.Module) -> str:
    """A short hash of a model's tensor names, shapes and first values (rounded to fp16 so a
    checkpoint loaded in another dtype hashes the same; the dtype is recorded separately)."""
    h = hashlib.sha256()
    samples = []
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(tensor.shape)};".encode())
        if tensor.is_floating_point() and tensor.numel():
            samples.append(tensor.detach().reshape(-1)[:8].to(torch.float16))
    if samples:
        h.update(torch.cat([s.to(samples[0].device) for s in samples]).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _anchor_source(anchor: Optional[Anchor]) -> str:
    return "first_frame" if anchor is None else anchor.source


def check_resume(state: LoopState, params: dict) -> None:
    """A clear error when ``state`` was made by a different run."""
    if state.params.get("version") != params.get("version"):
        raise InputError(f"the resume state has format version {state.params.get('version')}, this program "
                         f"writes version {params.get('version')}; start a new run.")
    differing = [k for k in sorted(set(state.params) | set(params)) if state.params.get(k) != params.get(k)]
    if differing:
        shown = "; ".join(f"{k}: state has {state.params.get(k)!r}, this run has {params.get(k)!r}"
                          for k in differing[:6])
        raise InputError(f"the resume state was made with different settings or checkpoints ({shown}). Resume "
                         f"with exactly the settings and models of the interrupted run (only the frame count may "
                         f"change), or start a new run.")


# -- the loop --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Outputs:
    """Where a run's progress and frames go (the same for every entry point)."""

    on_step: Optional[ProgressCallback] = None
    on_chunk: Optional[ChunkCallback] = None
    keep_frames: bool = True
    output_device: str | torch.device = "cpu"


class _Run(StepCounter):
    """One call of the loop: its step count (continued from a resume state), the parameters every state
    records, the target length and where the frames go (``keep`` collects them when kept)."""

    def __init__(self, out: _Outputs, total_steps: int, target_frames: int, params: Optional[dict] = None,
                 steps_done: int = 0):
        super().__init__(total_steps, out.on_step)
        self.done = steps_done
        self.params = params if params is not None else {}
        self.target_frames = target_frames
        self.on_chunk, self.output_device = out.on_chunk, out.output_device
        self.keep: Optional[list] = [] if out.keep_frames else None

    def video(self) -> Optional[torch.Tensor]:
        """The kept frames, trimmed to the target length (None when not kept)."""
        return torch.cat(self.keep)[:self.target_frames] if self.keep is not None else None


@dataclass
class _Position:
    """Where the loop stands: what the next extension chunk starts from."""

    chunks_done: int  # chunks in the video so far (the loop's index of the next chunk)
    frames_done: int
    cond_frames: torch.Tensor  # (8, H, W, 3) the last 8 frames
    next_prompt: int  # the index in ``settings.prompts`` of the next chunk's prompt (the last repeats)
    rng_state: Optional[torch.Tensor] = None  # rng="official": the generator's state


def _base_params(model, settings: ExtensionSettings, height: int, width: int, start: dict,
                 anchor: Optional[Anchor]) -> dict:
    return {
        "version": STATE_VERSION,
        "settings": settings.as_dict(),
        "size": [height, width],
        "start": start,
        "anchor": _anchor_source(anchor),
        "model": model_fingerprint(model),
        "dtype": str(model.dtype).replace("torch.", ""),
    }


def _extend(model, anchor: Anchor, settings: ExtensionSettings, at: _Position, run: _Run) -> None:
    """Extension chunks from ``at`` until ``run.target_frames``; frames appended to ``run.keep``."""
    device = model.device
    cond = at.cond_frames.to(device, torch.float32)
    anchor_tokens, grey_tokens = anchor.tokens.to(device), anchor.grey_tokens.to(device)
    uncond_text = model.encode_prompts([settings.negative_prompt])
    official_generator = None
    if settings.rng == "official":
        official_generator = torch.Generator().manual_seed(settings.seed)
        if at.rng_state is not None:
            official_generator.set_state(at.rng_state)
    text_cache: tuple[str, Optional[torch.Tensor]] = ("", None)
    # the chunk's last step is reported once its frames exist (with them as preview)
    report = all_but_last(run.count)

    index, frames_done = at.chunks_done, at.frames_done
    while frames_done < run.target_frames:
        prompt = settings.prompt_for(at.next_prompt + index - at.chunks_done)
        if text_cache[0] != prompt or text_cache[1] is None:
            text_cache = (prompt, model.encode_prompts([prompt]))
        conditioning = extend_step.ExtendConditioning(text=text_cache[1], uncond_text=uncond_text,
                                                      anchor=anchor_tokens, uncond_anchor=grey_tokens)
        generator = official_generator if official_generator is not None else chunk_generator(settings.seed, index)
        latents = extend_step.extend_chunk(model, image_to_signed(cond)[None], conditioning, settings,
                                           generator=generator, on_step=report)
        decoded = extend_step.decode_chunk(model, latents)[0]  # (16, 3, H, W) unit
        del latents
        new = unit_to_image(decoded[CONDITIONING_FRAMES:])
        del decoded
        cond = new[-CONDITIONING_FRAMES:]
        first = frames_done
        frames_done += new.shape[0]
        index += 1
        host = new.to(run.output_device)
        if run.keep is not None:
            run.keep.append(host)
        if run.on_chunk is not None:
            state = LoopState(index, frames_done, cond.detach().cpu().clone(), anchor.frames.clone(),
                              run.params, official_generator.get_state() if official_generator else None,
                              run.done + 1)
            run.on_chunk(ChunkDone(index - 1, first, host, max(0, min(new.shape[0], run.target_frames - first)),
                                   state))
        run.step(new[-min(new.shape[0], 4):].detach().cpu())


def extension_chunk_index(frames_so_far: int) -> int:
    """The loop's index of the chunk that extends a video of ``frames_so_far`` frames (16 -> 1, 24 -> 2).
    Never 0: that index (the seed itself) belongs to the initial chunk, and a short clip extended with
    the seed that made its first chunk must not reuse that chunk's noise."""
    return max(1, (frames_so_far - CONDITIONING_FRAMES) // NEW_FRAMES_PER_CHUNK)


@torch.no_grad()
def extend_one_chunk(model, video: torch.Tensor, settings: ExtensionSettings, *,
                     anchor: Optional[torch.Tensor | Anchor] = None, on_step: Optional[ProgressCallback] = None,
                     output_device: str | torch.device = "cpu") -> torch.Tensor:
    """The 8 new frames (8, H, W, 3) in 0..1 of one extension of ``video`` (F >= 8 frames, any source).

    The loop's own chunk code, so a chain of single extensions with one seed is the loop's video frame
    for frame: the chunk's noise index is read from the video's length (16 frames = the first
    extension). That holds for the default per-chunk seeding; with ``settings.rng == "official"`` (one
    generator for the whole loop, as the official code) every call starts that generator afresh, so a
    chain differs from the loop. ``settings.prompts[0]`` is the chunk's prompt; ``anchor`` defaults to
    frame 0.
    """
    _check_chunk_frames(settings)
    video = check_image_batch(video, "the video to extend", CONDITIONING_FRAMES)
    frames, height, width = int(video.shape[0]), int(video.shape[1]), int(video.shape[2])
    check_size(height, width)
    anchor = _as_anchor(model, anchor, height, width) or encode_anchor(model, video[:1])
    run = _Run(_Outputs(on_step, output_device=output_device), settings.steps, target_frames=frames + 1)
    # the chunk's noise index is read from the video's length; its prompt is the first
    _extend(model, anchor, settings, _Position(extension_chunk_index(frames), frames, video[-CONDITIONING_FRAMES:],
                                               next_prompt=0), run)
    return run.keep[0]


def _check_frames(frames: int, minimum: int, what: str) -> None:
    validation.frame_count(frames, minimum, what)


def _check_chunk_frames(*settings) -> None:
    """The loop's bookkeeping (8 conditioning + 8 new frames per chunk) needs the official chunk length."""
    for s in settings:
        if s.frames != CHUNK_FRAMES:
            raise InputError(f"the chunk loop makes {CHUNK_FRAMES}-frame chunks, the settings ask for {s.frames}: "
                             f"leave frames at {CHUNK_FRAMES} (other lengths are for one chunk alone).")


@torch.no_grad()
def extend_video(
    model,
    video: torch.Tensor,
    frames: int,
    settings: ExtensionSettings,
    *,
    anchor: Optional[torch.Tensor | Anchor] = None,
    on_step: Optional[ProgressCallback] = None,
    on_chunk: Optional[ChunkCallback] = None,
    resume: Optional[LoopState] = None,
    keep_frames: bool = True,
    output_device: str | torch.device = "cpu",
) -> Optional[torch.Tensor]:
    """Extend ``video`` (F, H, W, 3) in 0..1, any source, at least 8 frames) to ``frames`` frames
    in total. Returns the whole video (the given frames first) on ``output_device``, trimmed to
    ``frames``, or None with ``keep_frames=False`` (frames then only reach ``on_chunk``).

    model: a ``StreamingT2V`` with text encoder, image encoder and VAE.
    anchor: the APM anchor: an image (H, W, 3) or frames (Fa, H, W, 3) in 0..1 (other sizes are
        centre-cropped to the video's aspect ratio and resized), or an ``Anchor`` from
        ``encode_anchor``; default: frame 0 of ``video``.
    on_step(done, total, preview): after every denoising step (total = all steps of the run); each
        step carries the chunk's x0 estimate (a ``LatentPreview``), the last step of each chunk its newest
        decoded frames. Raising stops the run; every
        finished chunk has reached ``on_chunk`` by then.
    resume: a ``LoopState`` from ``on_chunk`` of an interrupted run with the same settings and
        model; ``video`` is then the frames that run produced (``state.frames_done`` of them), or
        None with ``keep_frames=False``.
    """
    _check_chunk_frames(settings)
    if resume is None or video is not None:
        video = check_image_batch(video, "the video to extend", CONDITIONING_FRAMES)
        height, width = int(video.shape[1]), int(video.shape[2])
    else:
        height, width = int(resume.cond_frames.shape[1]), int(resume.cond_frames.shape[2])
    check_size(height, width)
    _check_frames(frames, 1, "the length of the whole video")
    anchor = _as_anchor(model, anchor, height, width)
    params = _base_params(model, settings, height, width, {"kind": "video"}, anchor) if (
        on_chunk is not None or resume is not None) else {}
    out = _Outputs(on_step, on_chunk, keep_frames, output_device)
    if resume is not None:
        return _continue(model, resume, params, frames, settings, video, out, start_prompts=0, start_steps=0,
                         anchor_given=anchor is not None)
    if frames <= video.shape[0]:
        raise InputError(f"the video already has {video.shape[0]} frames; ask for more than that to extend it.")
    anchor = anchor if anchor is not None else encode_anchor(model, video[:1])
    run = _Run(out, extensions_needed(video.shape[0], frames) * settings.steps, frames, params)
    if run.keep is not None:
        run.keep.append(video.to(output_device))
    # the given video used no prompt: the first extension takes the first
    _extend(model, anchor, settings, _Position(1, video.shape[0], video[-CONDITIONING_FRAMES:], next_prompt=0), run)
    return run.video()


@torch.no_grad()
def generate_long_video(
    model,
    base_unet,
    frames: int,
    settings: ExtensionSettings,
    initial: InitialChunkSettings = InitialChunkSettings(),
    *,
    anchor: Optional[torch.Tensor | Anchor] = None,
    on_step: Optional[ProgressCallback] = None,
    on_chunk: Optional[ChunkCallback] = None,
    resume: Optional[LoopState] = None,
    previous_frames: Optional[torch.Tensor] = None,
    keep_frames: bool = True,
    output_device: str | torch.device = "cpu",
) -> Optional[torch.Tensor]:
    """Text -> a ``frames``-long video (F, H, W, 3) in 0..1: the initial chunk from the stock
    ModelScope ``base_unet`` (text encoder and VAE from ``model``), then CAM extensions.

    ``settings.prompts[0]`` and ``settings.negative_prompt`` and ``settings.seed`` drive the
    initial chunk too. resume: a ``LoopState`` of an interrupted run; ``previous_frames`` are its
    frames (or None with ``keep_frames=False``). Other arguments as ``extend_video``.
    """
    _check_frames(frames, CHUNK_FRAMES, "a long video starts with one 16-frame chunk")
    _check_chunk_frames(settings, initial)
    height, width = initial.height, initial.width
    anchor = _as_anchor(model, anchor, height, width)
    params = _base_params(model, settings, height, width, {"kind": "initial_chunk", **initial.as_dict()},
                          anchor) if (on_chunk is not None or resume is not None) else {}
    out = _Outputs(on_step, on_chunk, keep_frames, output_device)
    if resume is not None:
        return _continue(model, resume, params, frames, settings, previous_frames, out, start_prompts=1,
                         start_steps=initial.steps, anchor_given=anchor is not None)
    run = _Run(out, initial.steps + extensions_needed(CHUNK_FRAMES, frames) * settings.steps, frames, params)
    first = generate_initial_chunk(base_unet, model, settings.prompt_for(0), initial,
                                   negative_prompt=settings.negative_prompt,
                                   generator=chunk_generator(settings.seed, 0), on_step=all_but_last(run.count),
                                   output_device=model.device)
    anchor = anchor if anchor is not None else encode_anchor(model, first[:1])
    cond = first[-CONDITIONING_FRAMES:].clone()
    host = first.to(output_device)
    if run.keep is not None:
        run.keep.append(host)
    if on_chunk is not None:
        state = LoopState(1, CHUNK_FRAMES, cond.detach().cpu().clone(), anchor.frames.clone(),
                          params, None, run.done + 1)
        on_chunk(ChunkDone(0, 0, host, min(CHUNK_FRAMES, frames), state))
    run.step(first[-4:].detach().cpu())
    del first
    # the first chunk used the first prompt: the first extension takes the second
    _extend(model, anchor, settings, _Position(1, CHUNK_FRAMES, cond, next_prompt=1), run)
    return run.video()


def _continue(model, state: LoopState, params: dict, frames: int, settings: ExtensionSettings,
              previous: Optional[torch.Tensor], out: _Outputs, *, start_prompts: int, start_steps: int,
              anchor_given: bool) -> Optional[torch.Tensor]:
    """The rest of an interrupted run from its ``LoopState``. ``start_prompts``/``start_steps``: the
    prompts and steps the video's start took (a generated first chunk: 1 and its steps; a given video:
    none). The anchor is the state's; an anchor given again must be the same image."""
    if not anchor_given:
        params = dict(params, anchor=state.params.get("anchor"))
    check_resume(state, params)
    if out.keep_frames:
        if previous is None:
            raise InputError("resuming with keep_frames needs the frames of the interrupted run (previous frames).")
        previous = check_image_batch(previous, "the frames of the interrupted run")
        if previous.shape[0] != state.frames_done:
            raise InputError(f"the resume state expects {state.frames_done} frames of the interrupted run, "
                             f"{previous.shape[0]} were given: the frames and the state do not belong together.")
    extensions = state.chunks_done - 1 + extensions_needed(state.frames_done, frames)
    run = _Run(out, start_steps + extensions * settings.steps, frames, state.params, steps_done=state.steps_done)
    if run.keep is not None:
        run.keep.append(previous.to(out.output_device))
    at = _Position(state.chunks_done, state.frames_done, state.cond_frames,
                   next_prompt=start_prompts + state.chunks_done - 1, rng_state=state.rng_state)
    _extend(model, encode_anchor(model, state.anchor), settings, at, run)
    return run.video()
