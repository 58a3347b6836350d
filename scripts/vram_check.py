"""GPU memory check: peak VRAM and seconds per frame of each stage at full size with random weights,
loaded whole vs partially under 6, 8 and 12 GB budgets, fp16 vs fp8 weight storage.

Usage (from the pack root):
    python scripts/vram_check.py --out vram.json                 # on a GPU: full size, ~3-5 minutes
    python scripts/vram_check.py --tiny --device cpu --out x.json  # smoke test: tiny models on the CPU

What one row measures: one denoiser call (the unit of every stage's loop) with the stage's real shapes
(StreamingT2V extension: 16 frames at 256x256, eq. 12 guidance = 3 passes, CAM on 8 frames; first chunk:
ModelScope UNet, 16 frames at 256x256, cond+uncond; refiner: MS-Vid2Vid-XL, a 24-frame window at
1280x720, cond+uncond; Stream-DiffVSR: one 320x180 -> 1280x720 frame with RAFT flow, 4 steps; anchor:
one frame through OpenCLIP ViT-H). ``s/frame`` = call seconds x the calls per window at the default
settings / the new frames per window (extension 50 calls / 8 frames; first chunk 50 / 16; refine 18
(30 steps x strength 0.6) / 16; upscale: the whole frame). ``peak`` = torch.cuda.max_memory_allocated
during the call with the model placed (weights + activations), ``estimate`` = the stage's memory
estimate (streaming_core.pipelines.memory_estimates) + the resident weights.

Partial load (``partial@N``): the denoiser's largest layers go on the GPU until N GB minus the estimate
and the other networks' weights is used up; the rest stream from pinned CPU memory at each call
(streaming_core.models.offload.partial_load: what ComfyUI's ModelPatcher does with its lowvram layers).
``fp8``: the denoiser's weights stored as float8_e4m3fn, computing in fp16.
On the CPU (``--tiny``) peaks come from the profiler's allocation totals (activations only) and the
budgets are 25/50/75 % of the denoiser, so every code path runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streaming_core.models.offload import apply_weight_dtype, partial_load  # noqa: E402
from streaming_core.models.operations import set_execution_device  # noqa: E402
from streaming_core.official import EXTENSION, INITIAL_CHUNK, REFINE  # noqa: E402
from streaming_core.pipelines import memory_estimates as me  # noqa: E402
from streaming_core.pipelines.memory_probe import peak_bytes  # noqa: E402
from streaming_core.sampling.guided_model import enhancer_chunk_model  # noqa: E402

GB = 1024 ** 3
BUDGETS_GB = (6, 8, 12)


def nbytes(*nets) -> int:
    return sum(p.numel() * p.element_size() for n in nets for p in list(n.parameters()) + list(n.buffers()))


class Stage:
    """name, build() -> model, denoisers(model) -> [nets], others(model) -> [nets], inputs(model, device),
    call(model, inputs), estimate(model), calls_per_window / frames_per_window."""

    def __init__(self, name, build, denoisers, others, inputs, call, estimate, calls, frames):
        self.name, self.build, self.denoisers, self.others = name, build, denoisers, others
        self.inputs, self.call, self.estimate, self.calls, self.frames = inputs, call, estimate, calls, frames


def stages(full: bool, device: torch.device, dtype: torch.dtype) -> list[Stage]:
    from streaming_core.pipelines.generate_benchmark import build_models
    from streaming_core.pipelines.upscale import upscale_stream
    from streaming_core.tiny.enhancer import build_benchmark_enhancer
    from streaming_core.tiny.sdvsr import build_random_sdvsr

    size = 256 if full else 64
    g = torch.Generator().manual_seed(0)

    def st2v():
        return build_models(full, device, dtype, need_base=False)[0]

    def ext_inputs(m):
        lat = torch.randn(3, 4, 16, size // 8, size // 8, generator=g)
        return lat, torch.randn(3, 93, 1024, generator=g), torch.rand(3, 8, 3, size, size, generator=g) * 2 - 1

    def base():
        return build_models(full, device, dtype, need_base=True)[1]

    def base_inputs(m):
        return torch.randn(2, 4, 16, size // 8, size // 8, generator=g), torch.randn(2, 77, 1024, generator=g)

    def base_call(m, inp):
        from streaming_core.models.operations import execution_device

        d = execution_device(m)
        return m(inp[0].to(d, dtype), torch.tensor([500, 500], device=d), inp[1].to(d, dtype))

    rh, rw, rf = (720, 1280, 24) if full else (32, 64, 4)

    def enhancer():
        e = build_benchmark_enhancer("ms_vid2vid_xl", full=full, device=device)
        return e.to(device, dtype=dtype) if full else e.to(device)

    def refine_inputs(e):
        cond, uncond = e.encode_prompts("a red fox")
        return torch.randn(1, 4, rf, rh // e.vae_factor, rw // e.vae_factor, generator=g), cond, uncond

    lr_h, lr_w = (180, 320) if full else (24, 32)

    def sdvsr():
        return build_random_sdvsr(full, device).to(device, dtype=dtype if full else None)

    def upscale_inputs(m):
        return (torch.rand(2, lr_h, lr_w, 3, generator=g) * 255).to(torch.uint8)

    def upscale_call(m, frames):
        return list(upscale_stream(m, frames))[-1]  # seed 0

    return [
        Stage("extension 256x256" if full else "extension (tiny)", st2v, lambda m: [m.unet, m.cam],
              lambda m: [m.resampler, m.image_encoder, m.text_encoder, m.vae], ext_inputs,
              lambda m, i: m.predict_noise(i[0], 500, i[1], i[2]),
              lambda m: me.extension_chunk_for(m, height=size, width=size), EXTENSION.steps, 8),
        Stage("initial 256x256" if full else "initial (tiny)", base, lambda m: [m], lambda m: [], base_inputs,
              base_call, lambda m: me.initial_chunk_bytes(me.UNetShape.of(m), height=size, width=size, dtype=dtype),
              INITIAL_CHUNK.steps, 16),
        Stage(f"refine {rw}x{rh}", enhancer, lambda e: [e.unet], lambda e: [e.text_encoder, e.vae], refine_inputs,
              lambda e, i: enhancer_chunk_model(e, i[1], i[2], REFINE.guidance)(i[0], 500),
              lambda e: me.refine_window_for(e, frames=rf, height=rh, width=rw), 18, 16),
        Stage(f"upscale {lr_w}x{lr_h}->x4", sdvsr, lambda m: [m.unet, m.controlnet], lambda m: [m.vae, m.raft],
              upscale_inputs, upscale_call, lambda m: me.upscale_frame_for(m, height=lr_h, width=lr_w), 1, 1),
        Stage("anchor (ViT-H)" if full else "anchor (tiny)", st2v, lambda m: [m.image_encoder], lambda m: [m.resampler],
              lambda m: torch.rand(1, 3, size, size, generator=g) * 2 - 1, lambda m, i: m.anchor_tokens(i),
              lambda m: me.anchor_encode_for(m, pixels=(size, size)), 1, 1),
    ]


def measure(stage: Stage, model, inputs, device: torch.device, repeats: int) -> tuple[int, float]:
    """(peak bytes, seconds of one call: the best of ``repeats`` after a warm-up)."""
    with torch.no_grad():
        stage.call(model, inputs)  # warm-up (kernels, caches, cuDNN autotune)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        best = float("inf")
        peak = 0
        for _ in range(repeats):
            start = time.perf_counter()
            if device.type == "cuda":
                stage.call(model, inputs)
                torch.cuda.synchronize()
                peak = torch.cuda.max_memory_allocated()
            else:
                peak = max(peak, peak_bytes(lambda: stage.call(model, inputs))[0])
            best = min(best, time.perf_counter() - start)
    return peak, best


def row(stage, mode, peak, seconds, estimate, budget=None, note=""):
    return {"stage": stage.name, "mode": mode, "peak_gib": round(peak / GB, 3),
            "estimate_gib": round(estimate / GB, 3), "budget_gib": budget,
            "call_s": round(seconds, 4), "s_per_frame": round(seconds * stage.calls / stage.frames, 4), "note": note}


def run_stage(stage: Stage, device: torch.device, budgets, repeats: int, deadline: float, emit) -> None:
    model = stage.build()
    inputs = stage.inputs(model)
    dens, others = stage.denoisers(model), [n for n in stage.others(model) if n is not None]
    weights = nbytes(*dens, *others)
    estimate = stage.estimate(model)
    resident = (lambda placed: placed) if device.type == "cuda" else (lambda placed: 0)  # CPU peaks: activations only
    peak, secs = measure(stage, model, inputs, device, repeats)
    emit(row(stage, "full fp16" if device.type == "cuda" else "full", peak, secs, estimate + resident(weights),
             note=f"weights {weights / GB:.2f} GiB"))
    den_bytes = nbytes(*dens)
    for budget in budgets:
        if time.monotonic() > deadline:
            emit({"stage": stage.name, "mode": f"partial@{budget}", "note": "skipped: time limit"})
            continue
        if device.type == "cuda":
            room = budget * GB - estimate - nbytes(*others)
            label, place = f"partial@{budget}GB", max(0.0, room)
        else:
            label, place = f"partial@{int(budget * 100)}%", budget * den_bytes
        placed = sum(partial_load(net, device, place * nbytes(net) / max(den_bytes, 1)) for net in dens)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        peak, secs = measure(stage, model, inputs, device, repeats)
        emit(row(stage, label, peak, secs, estimate + resident(nbytes(*others) + placed),
                 budget if device.type == "cuda" else None,
                 note=f"{placed / GB:.2f} of {den_bytes / GB:.2f} GiB denoiser weights on the device"))
    # fp8: back on the device whole, weights stored in float8_e4m3fn
    for net in dens:
        partial_load(net, device, float("inf"))
    saved = apply_weight_dtype(dens, "fp8_e4m3fn")
    for net in dens:
        set_execution_device(net, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    peak, secs = measure(stage, model, inputs, device, repeats)
    emit(row(stage, "fp8_e4m3fn full", peak, secs, estimate + resident(weights - saved),
             note=f"saved {saved / GB:.2f} GiB"))
    del model, inputs
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models (a smoke test; CPU is fine)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--stages", default="all", help="comma-separated name prefixes (extension,initial,refine,"
                                                        "upscale,anchor) or all")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per row (the best is kept)")
    parser.add_argument("--time-limit", type=float, default=420, help="seconds; later partial rows are skipped")
    parser.add_argument("--out", default=None, help="JSON lines file (written as rows finish)")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not args.tiny and device.type != "cuda":
        parser.error("full size needs a CUDA GPU (about 14 GB of weights); use --tiny for the CPU smoke test")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    budgets = BUDGETS_GB if device.type == "cuda" else (0.25, 0.5, 0.75)
    deadline = time.monotonic() + args.time_limit
    out = open(args.out, "w") if args.out else None
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# {gpu}, torch {torch.__version__}, {dtype}", flush=True)

    def emit(r):
        r = {**r, "device": gpu}
        print(json.dumps(r), flush=True)
        if out:
            out.write(json.dumps(r) + "\n")
            out.flush()

    wanted = None if args.stages == "all" else tuple(args.stages.split(","))
    for stage in stages(not args.tiny, device, dtype):
        if wanted and not stage.name.startswith(wanted):
            continue
        if time.monotonic() > deadline:
            emit({"stage": stage.name, "note": "skipped: time limit"})
            continue
        try:
            run_stage(stage, device, budgets, args.repeats, deadline, emit)
        except torch.OutOfMemoryError as exc:
            emit({"stage": stage.name, "note": f"out of memory: {str(exc).splitlines()[0]}"})
            torch.cuda.empty_cache()
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    sys.exit(main())
