"""ST2V Randomized Blend (Model) inside a real ComfyUI, on a native video model ComfyUI loads itself.

The model is a tiny Cosmos-Predict2 DiT on Wan 2.1 latents ([B, 16, T, H, W], 4x temporal), written
by tests/comfyui_scripts/write_tiny_video_model.py and loaded by the stock UNETLoader; conditioning
comes from the weights-free LotusConditioning node. One harness session posts every graph; latents
are saved with SaveLatent and compared here. ComfyUI caches node outputs between graphs, so a repeat
run is made with a different sampler node (KSamplerAdvanced, SamplerCustomAdvanced), which must give
the same video as KSampler.

Where a batch is involved, two outputs that the blend makes equal in exact arithmetic are compared to
within BATCHING_ATOL rather than bit for bit: ComfyUI runs cond and uncond of every batch entry in one
forward, and another batch size can take other CPU kernels that round differently (see there).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from comfy_harness_util import REPO, comfyui, require_comfyui, run_comfy_python, run_workflows, summarize

pytestmark = comfyui

TINY_MODEL = "st2v_tiny_cosmos_predict2.safetensors"
WRITER = REPO / "tests" / "comfyui_scripts" / "write_tiny_video_model.py"
WAN_EXAMPLE = REPO / "example_workflows" / "api" / "wan21_t2v_randomized_blend.json"
FRAMES_PX = 33    # 9 latent frames at 4x
CONTEXT_PX = 17   # 5 latent frames
OVERLAP_PX = 9    # 3 latent frames -> windows [0,5) [2,7) [4,9)
# The same sample computed in batches of other sizes, on this machine with the unpatched model: 2e-5
# apart (max abs, one video vs row 0 of two); with the blend: 3e-5 (row 0) and 5e-5 (row 1), i.e.
# ComfyUI's own batching noise, not the windows'. 1e-3 is 20x that and 700x below the smallest change
# the windows make in this file (0.71: rand_s0 vs base), so it separates "the same" from a real change.
BATCHING_ATOL = 1e-3


def blend_node(blend="randomized", seed=0, context=CONTEXT_PX, overlap=OVERLAP_PX, compression="auto", axis="auto"):
    return {"class_type": "ST2VRandomizedBlendModel",
            "inputs": {"model": ["1", 0], "context_length": context, "context_overlap": overlap, "blend": blend,
                       "seed": seed, "temporal_compression": compression, "frame_axis": axis}}


NATIVE_PYRAMID = {"class_type": "ContextWindowsManual",
                  "inputs": {"model": ["1", 0], "context_length": 5, "context_overlap": 3,
                             "context_schedule": "standard_static", "context_stride": 1, "closed_loop": False,
                             "fuse_method": "pyramid", "dim": 2}}


def graph(name, patch=None, sampler="euler", runner="KSampler", latent=(16, 16, FRAMES_PX, 1), pick=None):
    """pick: sample only that entry of the batch (LatentFromBatch; KSampler then draws the noise of that
    batch index, the noise the entry gets when the whole batch is sampled)."""
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "LotusConditioning", "inputs": {}},
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},
        "4": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": dict(zip(("width", "height", "length", "batch_size"), latent))},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": f"st2v/{name}"}},
    }
    model = ["1", 0]
    if patch is not None:
        g["5"] = patch
        model = ["5", 0]
    common = {"positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}
    if pick is not None:
        g["8"] = {"class_type": "LatentFromBatch", "inputs": {"samples": ["4", 0], "batch_index": pick, "length": 1}}
        common["latent_image"] = ["8", 0]
    if runner == "KSampler":
        g["6"] = {"class_type": "KSampler", "inputs": {"model": model, "seed": 1, "steps": 2, "cfg": 3.0, "sampler_name": sampler,
                                                       "scheduler": "simple", "denoise": 1.0, **common}}
    elif runner == "KSamplerAdvanced":
        g["6"] = {"class_type": "KSamplerAdvanced", "inputs": {
            "model": model, "add_noise": "enable", "noise_seed": 1, "steps": 2, "cfg": 3.0, "sampler_name": sampler,
            "scheduler": "simple", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable", **common}}
    else:  # SamplerCustomAdvanced
        g.update({
            "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
            "11": {"class_type": "CFGGuider", "inputs": {"model": model, "positive": ["2", 0], "negative": ["3", 0], "cfg": 3.0}},
            "12": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}},
            "13": {"class_type": "BasicScheduler", "inputs": {"model": model, "scheduler": "simple", "steps": 2, "denoise": 1.0}},
            "6": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["10", 0], "guider": ["11", 0], "sampler": ["12", 0],
                                                                   "sigmas": ["13", 0], "latent_image": ["4", 0]}},
        })
    return g


WORKFLOWS = {
    "base": graph("base"),
    "one_window": graph("one_window", blend_node(context=FRAMES_PX, overlap=9)),
    "rand_s0": graph("rand_s0", blend_node(seed=0)),
    "rand_s1": graph("rand_s1", blend_node(seed=1)),
    "middle": graph("middle", blend_node("hard_cut_middle")),
    "pyramid": graph("pyramid", blend_node("pyramid")),
    "native_pyramid": graph("native_pyramid", NATIVE_PYRAMID),
    "rand_ksampler_advanced": graph("rand_ksampler_advanced", blend_node(), runner="KSamplerAdvanced"),
    "rand_custom_advanced": graph("rand_custom_advanced", blend_node(), runner="SamplerCustomAdvanced"),
    "rand_dpm_2": graph("rand_dpm_2", blend_node(), sampler="dpm_2"),
    "base_dpm_2": graph("base_dpm_2", sampler="dpm_2"),
    "rand_dpm_2_advanced": graph("rand_dpm_2_advanced", blend_node(), sampler="dpm_2", runner="KSamplerAdvanced"),
    "two_videos": graph("two_videos", blend_node(), latent=(16, 16, FRAMES_PX, 2)),
    "second_video_alone": graph("second_video_alone", blend_node(), latent=(16, 16, FRAMES_PX, 2), pick=1),
    "batch_axis": graph("batch_axis", blend_node(context=5, overlap=3, compression="1x", axis="batch"),
                        latent=(16, 16, 1, 9)),
    "batch_base": graph("batch_base", latent=(16, 16, 1, 9)),
}


def _tiny_models_dir(cache) -> Path:
    """The tiny model, written once per writer version (kept in pytest's cache between runs)."""
    key = hashlib.sha256(WRITER.read_bytes() + str(require_comfyui().root).encode()).hexdigest()[:16]
    base = Path(cache.mkdir("st2v_comfy_models")) / key
    target = base / "diffusion_models" / TINY_MODEL
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        done = run_comfy_python(WRITER, str(target))
        assert done.returncode == 0, done.stderr[-3000:]
    # the Wan example's files, empty: enough for ComfyUI's validation, which only checks names
    api = json.loads(WAN_EXAMPLE.read_text())
    for node in api.values():
        for key_name, folder in (("unet_name", "diffusion_models"), ("clip_name", "text_encoders"), ("vae_name", "vae")):
            if key_name in node["inputs"]:
                (base / folder).mkdir(parents=True, exist_ok=True)
                (base / folder / node["inputs"][key_name]).touch()
    return base


@pytest.fixture(scope="module")
def session(request, tmp_path_factory):
    models = _tiny_models_dir(request.config.cache)
    workflows = dict(WORKFLOWS, wan_example=json.loads(WAN_EXAMPLE.read_text()))
    result = run_workflows(workflows, tmp_path_factory.mktemp("blend_harness"), expect={"wan_example": "error"},
                           models_dir=models, timeout=600)
    print(summarize(result))
    return result


def latent(session, name) -> torch.Tensor:
    (path,) = session.outputs(f"{name}_0*.latent")
    return load_file(str(path))["latent_tensor"]


def assert_same_up_to_batching(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    gap = (actual - expected).abs().max().item()
    assert gap <= BATCHING_ATOL, f"{what}: {gap:.3g} apart (batching alone: <= {BATCHING_ATOL})"


def test_pack_imports_and_every_graph_ends_as_expected(session):
    server = session.report["server"]
    assert server["pack_imported"], server.get("import_traceback")
    assert "ST2VRandomizedBlendModel" in server["pack_nodes"]
    assert session.returncode == 0, summarize(session)


def test_object_info_is_our_schema(session):
    info = session.object_info["ST2VRandomizedBlendModel"]
    assert info["category"] == "StreamingT2V/model patches" and info["output"] == ["MODEL"]
    required = info["input"]["required"]
    assert required["blend"][0] == ["randomized", "hard_cut_middle", "pyramid", "relative", "flat", "overlap-linear"]
    assert required["seed"][1]["control_after_generate"] is True


def test_windows_come_from_pixel_frames_and_the_detected_4x_compression(session):
    assert "ST2V blend (randomized): 9 frames along dim 2 in windows [0,5) [2,7) [4,9)" in session.server_log
    assert "ST2V blend (randomized): 9 frames along dim 0 in windows [0,5) [2,7) [4,9)" in session.server_log


def test_blending_changes_the_video_and_is_reproducible(session):
    base, rand = latent(session, "base"), latent(session, "rand_s0")
    assert rand.shape == base.shape == (1, 16, 9, 2, 2) and torch.isfinite(rand).all()
    assert torch.equal(latent(session, "one_window"), base), "a window covering the video must change nothing"
    assert not torch.allclose(rand, base, atol=1e-3), "windows change the model calls"
    assert not torch.allclose(latent(session, "rand_s1"), rand, atol=1e-4), "another blend seed, other cuts"
    assert not torch.allclose(latent(session, "middle"), rand, atol=1e-4)


def test_comparison_fuses_are_comfyuis_own(session):
    pyramid = latent(session, "pyramid")
    assert torch.equal(pyramid, latent(session, "native_pyramid")), "same windows + ComfyUI's fuse = ContextWindowsManual"
    assert not torch.allclose(pyramid, latent(session, "rand_s0"), atol=1e-4)


def test_every_sampler_node_reproduces_the_same_video(session):
    rand = latent(session, "rand_s0")
    assert torch.equal(latent(session, "rand_ksampler_advanced"), rand)
    assert torch.equal(latent(session, "rand_custom_advanced"), rand)


def test_samplers_that_call_between_schedule_sigmas_work(session):
    # ComfyUI 0.3.64's own context windows raise "No sample_sigmas matched current timestep" on dpm_2.
    # Ours map its midpoint call to (step, salt): the windows apply to every call, with cuts drawn from
    # (seed, step, salt) only, so a second sampler node redraws exactly the same cuts.
    blended = latent(session, "rand_dpm_2")
    assert blended.shape == (1, 16, 9, 2, 2) and torch.isfinite(blended).all()
    assert not torch.allclose(blended, latent(session, "base_dpm_2"), atol=1e-3), "windows change dpm_2's calls"
    assert torch.equal(latent(session, "rand_dpm_2_advanced"), blended), "the same cuts at the same calls"


def test_a_batch_of_videos_keeps_its_timesteps_whole(session):
    # ComfyUI 0.3.64's own windows slice the [2] timesteps with frame indices 0..4 and fail here. Ours
    # keep each video's timestep, and the windows and cuts depend on (seed, step, salt), not on the
    # batch: every video of the batch is sampled as it would be alone with the noise of its index.
    out = latent(session, "two_videos")
    assert out.shape == (2, 16, 9, 2, 2) and torch.isfinite(out).all()
    assert_same_up_to_batching(out[:1], latent(session, "rand_s0"), "video 0 of the batch vs sampled alone")
    assert_same_up_to_batching(out[1:], latent(session, "second_video_alone"), "video 1 of the batch vs alone")
    assert not torch.allclose(out[0], out[1], atol=1e-3), "the two videos have their own noise"


def test_batch_axis_blends_image_batches(session):
    # Frames as the batch, windows [0,5) [2,7) [4,9) along it (the log line is checked above). The tiny
    # Cosmos DiT attends within each sample only, so here no frame sees another: each window call gives
    # every frame what the full-batch call gives it, and the fuse reproduces the unpatched batch. That
    # checks what is ours: each frame's output goes back to its own place in the batch, computed with its
    # own noise and timestep. (The blend changes the video only with a model that mixes frames across
    # the batch, such as AnimateDiff's motion modules; ComfyUI has no weights-free one to test with.)
    out, plain = latent(session, "batch_axis"), latent(session, "batch_base")
    assert out.shape == plain.shape == (9, 16, 1, 2, 2) and torch.isfinite(out).all()
    assert_same_up_to_batching(out, plain, "windows along the batch vs the unpatched batch")
    assert not torch.allclose(plain[1:], plain[:-1], atol=1e-3), "a frame written one place off would show"


def test_example_workflow_passes_comfyuis_validation(session):
    record = session.workflow("wan_example")
    assert record["status"] == "error", "validation passed; execution stops at the empty stand-in model files"
    assert record["execution_error"]["node_type"] in ("UNETLoader", "CLIPLoader", "VAELoader")


def test_server_log_shows_no_import_problems(session):
    assert not re.search(r"IMPORT FAILED|Cannot import", session.server_log)
    assert session.report["server"]["import_error"] is None
