"""Seams of randomized blending vs ComfyUI's fuses on one model and seeds (run with ComfyUI's python).

Usage: python compare_seams.py COMFYUI_ROOT TINY_MODEL.safetensors [--seeds N] [--steps N]

Samples one long latent video per fuse with ComfyUI's own sampler (euler, 'simple' schedule), the
same noise seed and the same windows, and reports per fuse:
* jump ratio: mean temporal difference |x[t+1] - x[t]| at frame transitions inside window overlaps
  (where one window hands over to the next) divided by the mean at all other transitions;
  1.0 means the handovers are indistinguishable from ordinary motion, above 1 means seams;
* worst handover: the largest handover difference over the median transition difference;
* distance to the whole-video run: mean |x - x_full| against sampling without windows, which the
  tiny model can do (a real model cannot go past its training length; that is why windows exist).

A second table repeats the comparison with a toy denoiser whose prediction depends on its whole
window (like a video model's, through attention), so overlapping windows disagree strongly; it goes
through the same ComfyUI handler code (``handler.execute``) with an Euler loop written here. Its
frames are not temporally coherent either (even its no-window run scores above 1), so treat it as a
probe of the code path, not as a quality measure.

The seam metric here is a provisional latent-space one, kept in this script until the project's
seam metric lands in streaming_core; swap it in then. Numbers on the tiny random-weight model say
whether a fuse leaves discontinuities at the handovers, not how a real video looks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("comfy_root")
parser.add_argument("model")
parser.add_argument("--seeds", type=int, default=4)
parser.add_argument("--steps", type=int, default=8)
opts = parser.parse_args()
sys.path.insert(0, opts.comfy_root)

from comfy.cli_args import args  # noqa: E402

args.cpu = True

import torch  # noqa: E402

import comfy.context_windows as cw  # noqa: E402
import comfy.sample  # noqa: E402
import comfy.sd  # noqa: E402

PACK_DIR = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("st2v_pack", PACK_DIR / "__init__.py", submodule_search_locations=[str(PACK_DIR)])
pack = importlib.util.module_from_spec(spec)
sys.modules["st2v_pack"] = pack
spec.loader.exec_module(pack)
from st2v_pack.streaming_core.sampling.blend import chunk_windows  # noqa: E402

FRAMES, CHUNK, OVERLAP = 33, 9, 3          # latent frames: 129 / 33 / 9 video frames at 4x
torch.set_num_threads(1)
model = comfy.sd.load_diffusion_model(opts.model)
node = pack.NODE_CLASS_MAPPINGS["ST2VRandomizedBlendModel"]()
generator = torch.Generator().manual_seed(1234)
positive = [[torch.randn(1, 16, 1024, generator=generator), {}]]
negative = [[torch.zeros(1, 16, 1024), {}]]
latent = torch.zeros(1, 16, FRAMES, 4, 4)
windows = chunk_windows(FRAMES, CHUNK, OVERLAP)
# transition t (frame t -> t+1) can be a cut: the later window writes from start + offset, offset in [0, overlap-1]
handover = sorted({t for prev, cur in zip(windows, windows[1:]) for t in range(cur.start - 1, prev.end - 1)})
elsewhere = [t for t in range(FRAMES - 1) if t not in handover]


def patched(blend):
    if blend == "none":
        return model
    pixels = lambda n: (n - 1) * 4 + 1  # noqa: E731  (latent -> video frames at 4x)
    (out,) = node.patch(model, pixels(CHUNK), pixels(OVERLAP), blend, 0, "auto", "auto")
    return out


def sample(m, seed):
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(m, noise, opts.steps, 3.0, "euler", "simple", positive, negative, latent,
                               denoise=1.0, seed=seed, disable_pbar=True)


def jumps(x):
    return (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(0, 1, 3, 4))  # one value per transition


results = {}
full = {seed: sample(model, seed) for seed in range(opts.seeds)}
for blend in ("none", "randomized", "hard_cut_middle", "pyramid", "overlap-linear", "flat"):
    m = patched(blend)
    ratio, worst, dist = [], [], []
    for seed in range(opts.seeds):
        x = full[seed] if blend == "none" else sample(m, seed)
        d = jumps(x)
        ratio.append((d[handover].mean() / d[elsewhere].mean()).item())
        worst.append((d[handover].max() / d.median()).item())
        dist.append((x - full[seed]).abs().mean().item())
    results[blend] = {"jump_ratio": round(sum(ratio) / len(ratio), 4), "worst_handover": round(sum(worst) / len(worst), 4),
                      "distance_to_whole_video": round(sum(dist) / len(dist), 5)}


def toy_calc_cond_batch(_model, conds, x, timestep, _options):
    """A window-aware toy prediction: each window sees its own mean, as attention would."""
    sigma = timestep.reshape(-1)[0]
    return [torch.tanh(0.5 * x + x.mean(dim=2, keepdim=True) * (1 + sigma)) for _ in conds]


toy = {}
sigmas = torch.linspace(10.0, 0.0, opts.steps + 1)
for blend in ("none", "randomized", "hard_cut_middle", "pyramid", "overlap-linear", "flat"):
    handler = None if blend == "none" else patched(blend).model_options["context_handler"]
    ratio, worst = [], []
    for seed in range(opts.seeds):
        x = torch.randn(1, 4, FRAMES, 2, 2, generator=torch.Generator().manual_seed(seed)) * sigmas[0]
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            options = {"transformer_options": {"sample_sigmas": sigmas}}
            if handler is None:
                (denoised,) = toy_calc_cond_batch(None, [[{}]], x, s.reshape(1), options)
            else:
                (denoised,) = handler.execute(toy_calc_cond_batch, None, [[{}]], x, s.reshape(1), options)
            x = x + (x - denoised) / s * (s_next - s)
        d = jumps(x)
        ratio.append((d[handover].mean() / d[elsewhere].mean()).item())
        worst.append((d[handover].max() / d.median()).item())
    toy[blend] = {"jump_ratio": round(sum(ratio) / len(ratio), 4), "worst_handover": round(sum(worst) / len(worst), 4)}

print(json.dumps({"setup": {"latent_frames": FRAMES, "windows": [[w.start, w.end] for w in windows],
                            "handover_transitions": handover, "steps": opts.steps, "seeds": opts.seeds,
                            "sampler": "euler/simple", "model": Path(opts.model).name},
                  "tiny_model": results, "toy_window_aware_denoiser": toy}, indent=1))
