"""Seams of randomized blending vs ComfyUI's fuses on one model and seeds (run with ComfyUI's python).

Usage: python compare_seams.py COMFYUI_ROOT TINY_MODEL.safetensors [--seeds N] [--steps N]

Samples one long latent video per fuse with ComfyUI's own sampler (euler, 'simple' schedule), the
same noise seed and the same windows, and reports per fuse:
* seam score: ``streaming_core.metrics.seam_score`` (the pack's seam metric, shared with the
  Randomized Blend Refiner): per overlap, the largest frame-to-frame change where a window may hand
  over, divided by the median change outside the overlaps, averaged over the overlaps; about 1 means
  no seam (a little above 1: a max against a median), large means a visible jump;
* distance to the whole-video run: mean |x - x_full| against sampling without windows, which the
  tiny model can do (a real model cannot go past its training length; that is why windows exist).

A second table repeats the comparison with a toy denoiser whose prediction depends on its whole
window (like a video model's, through attention), so overlapping windows disagree strongly; it goes
through the same ComfyUI handler code (``handler.execute``) with an Euler loop written here. Its
frames are not temporally coherent either (even its no-window run scores above 1), so treat it as a
probe of the code path, not as a quality measure.

Numbers on the tiny random-weight model say
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
from st2v_pack.streaming_core.metrics import seam_score  # noqa: E402
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


results = {}
full = {seed: sample(model, seed) for seed in range(opts.seeds)}
for blend in ("none", "randomized", "hard_cut_middle", "pyramid", "overlap-linear", "flat"):
    m = patched(blend)
    seams, dist = [], []
    for seed in range(opts.seeds):
        x = full[seed] if blend == "none" else sample(m, seed)
        seams.append(seam_score(x, windows))
        dist.append((x - full[seed]).abs().mean().item())
    results[blend] = {"seam_score": round(sum(seams) / len(seams), 4),
                      "distance_to_whole_video": round(sum(dist) / len(dist), 5)}


def toy_calc_cond_batch(_model, conds, x, timestep, _options):
    """A window-aware toy prediction: each window sees its own mean, as attention would."""
    sigma = timestep.reshape(-1)[0]
    return [torch.tanh(0.5 * x + x.mean(dim=2, keepdim=True) * (1 + sigma)) for _ in conds]


toy = {}
sigmas = torch.linspace(10.0, 0.0, opts.steps + 1)
for blend in ("none", "randomized", "hard_cut_middle", "pyramid", "overlap-linear", "flat"):
    handler = None if blend == "none" else patched(blend).model_options["context_handler"]
    seams = []
    for seed in range(opts.seeds):
        x = torch.randn(1, 4, FRAMES, 2, 2, generator=torch.Generator().manual_seed(seed)) * sigmas[0]
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            options = {"transformer_options": {"sample_sigmas": sigmas}}
            if handler is None:
                (denoised,) = toy_calc_cond_batch(None, [[{}]], x, s.reshape(1), options)
            else:
                (denoised,) = handler.execute(toy_calc_cond_batch, None, [[{}]], x, s.reshape(1), options)
            x = x + (x - denoised) / s * (s_next - s)
        seams.append(seam_score(x, windows))
    toy[blend] = {"seam_score": round(sum(seams) / len(seams), 4)}

print(json.dumps({"setup": {"latent_frames": FRAMES, "windows": [[w.start, w.end] for w in windows],
                            "steps": opts.steps, "seeds": opts.seeds,
                            "sampler": "euler/simple", "model": Path(opts.model).name},
                  "tiny_model": results, "toy_window_aware_denoiser": toy}, indent=1))
