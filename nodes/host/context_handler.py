"""ComfyUI's context-window handler with the paper's hard-cut fuse (imported only inside ComfyUI).

We subclass ``comfy.context_windows.IndexListContextHandler`` and keep what it already does: slicing
x, timesteps and every cond per window, ControlNet preparation, its callbacks, the interrupt check
between windows, and (through ``create_prepare_sampling_wrapper``) VRAM estimates for one window.
We replace three things:

* the window list: ``streaming_core.sampling.blend.chunk_windows``, the tiling the Randomized Blend
  Refiner uses (ComfyUI's 'standard_static' schedule gives the same windows);
* the step bookkeeping: ComfyUI's ``set_step`` fails on samplers that evaluate between two schedule
  sigmas (dpm_2, dpmpp_2s_ancestral, ...); ours maps those calls to a step and a salt;
* for 'randomized' and 'hard_cut_middle', the fuse: each window's output is written over the frames
  it owns at this call (``write_window``), cut points drawn from (seed, step, salt). ComfyUI's
  weighted fuses (pyramid, relative, flat, overlap-linear) run unchanged for comparison.
"""

from __future__ import annotations

import logging

import comfy.context_windows as cw
import comfy.patcher_extension
import torch

from ...streaming_core.sampling.blend import Window, chunk_windows, write_window
from ...streaming_core.sampling.context_blend import cut_offsets, describe_windows, locate_step
from .blend_names import BLEND_CHOICES, HARD_CUTS

log = logging.getLogger(__name__)


class BlendWindow(cw.IndexListContextWindow):
    """A contiguous window, sliced with ``narrow`` (ComfyUI indexes with a list of indices, which
    torch warns is deprecated). ComfyUI also slices the per-sample timestep with the frame indices
    (``dim=0``); that is only right when the frames are the batch, so for [B, C, T, H, W] latents the
    timestep stays whole (a batch of 2 videos would otherwise index past its 2 entries)."""

    def get_tensor(self, full: torch.Tensor, device=None, dim=None) -> torch.Tensor:
        dim = self.dim if dim is None else dim
        if dim == 0 and (self.dim != 0 or full.shape[0] == 1):
            return full.to(device)
        return full.narrow(dim, self.index_list[0], self.context_length).to(device=device, copy=True)

    def add_window(self, full: torch.Tensor, to_add: torch.Tensor, dim=None) -> torch.Tensor:
        dim = self.dim if dim is None else dim
        full.narrow(dim, self.index_list[0], self.context_length).add_(to_add)
        return full


class RandomizedBlendContextHandler(cw.IndexListContextHandler):
    """ComfyUI's handler with our windows and step bookkeeping; hard-cut blends fuse by ownership."""

    def __init__(self, blend: str, context_length: int, context_overlap: int, dim: int, seed: int):
        if blend not in BLEND_CHOICES:
            raise ValueError(f"unknown blend {blend!r}; one of {BLEND_CHOICES}")
        super().__init__(
            context_schedule=cw.get_matching_context_schedule(cw.ContextSchedules.STATIC_STANDARD),
            fuse_method=cw.get_matching_fuse_method("pyramid" if blend in HARD_CUTS else blend),
            context_length=context_length, context_overlap=context_overlap, context_stride=1,
            closed_loop=False, dim=dim)
        self.blend = blend
        self.seed = int(seed)
        self._salt = 0

    def get_context_windows(self, model, x_in: torch.Tensor, model_options: dict) -> list[BlendWindow]:
        spans = chunk_windows(x_in.size(self.dim), self.context_length, self.context_overlap)
        return [BlendWindow(list(range(w.start, w.end)), dim=self.dim) for w in spans]

    def set_step(self, timestep: torch.Tensor, model_options: dict) -> None:
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        schedule = [] if sigmas is None else sigmas.flatten().tolist()
        self._step, self._salt = locate_step(schedule, float(timestep.flatten()[0]))

    def execute(self, calc_cond_batch, model, conds, x_in: torch.Tensor, timestep: torch.Tensor, model_options: dict):
        if self.blend not in HARD_CUTS:
            return super().execute(calc_cond_batch, model, conds, x_in, timestep, model_options)
        self.set_step(timestep, model_options)
        windows = self.get_context_windows(model, x_in, model_options)
        spans = [Window(w.index_list[0], w.index_list[-1] + 1) for w in windows]
        offsets = cut_offsets(spans, HARD_CUTS[self.blend], self.seed, self._step, self._salt)
        if self._step == 0 and self._salt == 0:
            log.info("ST2V blend (%s): %d frames along dim %d in windows %s", self.blend, x_in.size(self.dim),
                     self.dim, describe_windows(spans))
        log.debug("ST2V blend step %d salt %d cuts %s", self._step, self._salt,
                  [s.start + o for s, o in zip(spans[1:], offsets)])

        fused = [torch.empty_like(x_in) for _ in conds]
        for callback in comfy.patcher_extension.get_all_callbacks(cw.IndexListCallbacks.EXECUTE_START, self.callbacks):
            callback(self, model, x_in, conds, timestep, model_options)
        try:
            for index, window in enumerate(windows):
                (result,) = self.evaluate_context_windows(calc_cond_batch, model, x_in, conds, timestep,
                                                          [(index, window)], model_options)
                for out, value in zip(fused, result.sub_conds_out):
                    write_window(out, value, spans, offsets, index, self.dim)
                # a hard cut keeps no per-frame counts or biases: those callback arguments are None
                for callback in comfy.patcher_extension.get_all_callbacks(
                        cw.IndexListCallbacks.COMBINE_CONTEXT_WINDOW_RESULTS, self.callbacks):
                    callback(self, x_in, result.sub_conds_out, result.sub_conds, window, index, len(windows),
                             timestep, fused, None, None)
            return fused
        finally:
            for callback in comfy.patcher_extension.get_all_callbacks(cw.IndexListCallbacks.EXECUTE_CLEANUP, self.callbacks):
                callback(self, model, x_in, conds, timestep, model_options)


def patch_model(model, blend: str, context_length: int, context_overlap: int, dim: int, seed: int):
    """A clone of ``model`` whose every model call runs per window and fuses with ``blend``."""
    patched = model.clone()
    patched.model_options["context_handler"] = RandomizedBlendContextHandler(
        blend, context_length, context_overlap, dim, seed)
    cw.create_prepare_sampling_wrapper(patched)
    return patched
