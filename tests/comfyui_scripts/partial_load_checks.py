"""Partial (low-VRAM) loading of every tiny model through ComfyUI's own ModelPatcher, in one process
(run with ComfyUI's python). Usage: python partial_load_checks.py COMFYUI_ROOT

On a CPU the load device is the CPU, so ComfyUI's load_models_gpu always loads whole; the partial
path is driven directly: ``ModelPatcher.load(device, lowvram_model_memory=budget)`` with a budget of a
third of the model, which is what load_models_gpu calls when VRAM is short (--lowvram, or the automatic
partial load). The layers past the budget then run through comfy.ops' cast path
(``comfy_cast_weights``). Prints one JSON object: {workload: {...}}.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import traceback
from pathlib import Path

COMFY_ROOT = sys.argv[1]
sys.path.insert(0, COMFY_ROOT)

from st2v_pack_in_comfy import load_pack_like_comfyui  # noqa: E402

from comfy.cli_args import args  # noqa: E402

args.cpu = True

import torch  # noqa: E402

import comfy.model_management  # noqa: E402,F401
import comfy.model_patcher  # noqa: E402,F401

TMP = Path(tempfile.mkdtemp(prefix="st2v_partial_load_"))
module_name, pack = load_pack_like_comfyui(TMP)
host = sys.modules[module_name + ".nodes.host"]
workloads = importlib.import_module(module_name + ".streaming_core.tiny.workloads").WORKLOADS

CPU = torch.device("cpu")
only = sys.argv[2:]


def wrap(workload, model, weight_dtype="default"):
    nets = workload.networks(model)
    if isinstance(model, torch.nn.Module):
        parts = [nets[name] for name in workload.fp8_parts]
        return host.wrap_model(model, "diffusion", CPU, CPU, weight_dtype=weight_dtype, fp8_parts=parts)
    return host.wrap_bundle(model, nets, weight_dtype=weight_dtype, fp8_parts=list(workload.fp8_parts))


def partial_run(workload, weight_dtype="default"):
    model = workload.build()
    patcher = wrap(workload, model, weight_dtype)
    sizes = sorted(size for size, *_ in patcher._load_list())
    budget = (patcher.model_size() - sizes[-1]) // 3  # a third of the rest: the big text embedding alone is not enough
    patcher.load(CPU, lowvram_model_memory=budget)
    host.place_outside_layers(patcher)
    lowvram = [m for m in patcher.model.modules() if getattr(m, "comfy_cast_weights", False)]
    info = {"model_bytes": patcher.model_size(), "budget_bytes": budget, "lowvram_layers": len(lowvram),
            "model_lowvram": bool(patcher.model.model_lowvram),
            "loaded_bytes": int(patcher.model.model_loaded_weight_memory)}
    out = workload.run(model)
    patcher.unpatch_model(CPU)
    return out, info


results = {}
for name, workload in workloads.items():
    if only and name not in only:
        continue
    try:
        reference = workload.run(workload.build())  # plain torch.nn layers, no ComfyUI
        full_model = workload.build()
        full_patcher = wrap(workload, full_model)
        host.load_for_use([full_patcher])  # load_models_gpu: whole, on the CPU
        full = workload.run(full_model)
        partial, info = partial_run(workload)
        fp8, fp8_info = partial_run(workload, "fp8_e4m3fn")
        rel = float((fp8 - reference).norm() / reference.norm())
        results[name] = {**info, "full_equal_plain": torch.equal(full, reference),
                         "partial_equal_full": torch.equal(partial, full),
                         "max_abs_partial_minus_full": float((partial - full).abs().max()),
                         "fp8_partial_lowvram_layers": fp8_info["lowvram_layers"], "fp8_e4m3fn_rel_rms": rel}
    except Exception:
        results[name] = {"error": traceback.format_exc(limit=6)}

print(json.dumps(results))
