"""The pack's ComfyUI adapter (nodes/host) against a real ComfyUI, in one process (run with ComfyUI's python).

Usage: python host_checks.py COMFYUI_ROOT

Sets ComfyUI up the way main.py does before custom nodes load (--cpu, extra_model_paths.yaml
applied), loads the pack the way nodes.py loads a custom-node folder (a package named after its
path), then runs each check and prints one JSON object: {check name: "ok" | "FAIL: ..."}.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

COMFY_ROOT = sys.argv[1]
sys.path.insert(0, COMFY_ROOT)

from st2v_pack_in_comfy import checker, load_pack_like_comfyui  # noqa: E402

from comfy.cli_args import LatentPreviewMethod, args  # noqa: E402

args.cpu = True

import torch  # noqa: E402

import comfy.context_windows as cw  # noqa: E402
import comfy.latent_formats as latent_formats  # noqa: E402
import comfy.model_management as mm  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import latent_preview  # noqa: E402
from utils.extra_config import load_extra_path_config  # noqa: E402

# --- a user's extra_model_paths.yaml, applied before the pack imports (main.py order) ----------
TMP = Path(tempfile.mkdtemp(prefix="st2v_host_checks_"))
models = TMP / "user_models"
for rel in ("streamingt2v/a.safetensors", "streamingt2v/sub/b.ckpt", "streamingt2v/notes.txt",
            "stream_diffvsr/raft_large.pth", "stream_diffvsr/hub1/unet/config.json", "stream_diffvsr/hub2/readme.md"):
    (models / rel).parent.mkdir(parents=True, exist_ok=True)
    (models / rel).write_bytes(b"x")
(TMP / "paths.yaml").write_text(f"mine:\n  base_path: {models}\n  streamingt2v: streamingt2v\n  stream_diffvsr: stream_diffvsr\n")
load_extra_path_config(str(TMP / "paths.yaml"))

# --- the pack, loaded like nodes.load_custom_node does it --------------------------------------
module_name, pack = load_pack_like_comfyui(TMP)
host = sys.modules[module_name + ".nodes.host"]
errors = sys.modules[module_name + ".streaming_core.errors"]
blend = sys.modules[module_name + ".streaming_core.sampling.blend"]

results = {}


check = checker(results, limit=4)


@check
def pack_registers_its_nodes():
    assert "ST2VRandomizedBlendModel" in pack.NODE_CLASS_MAPPINGS
    assert host.in_comfyui()


@check
def model_folders_merge_yaml_and_default():
    dirs, extensions = folder_paths.folder_names_and_paths["streamingt2v"]
    assert dirs == [str(models / "streamingt2v"), os.path.join(folder_paths.models_dir, "streamingt2v")], dirs
    assert set(host.MODEL_EXTENSIONS) <= set(extensions) and ".txt" not in extensions
    host.register_model_folders()  # idempotent
    assert folder_paths.folder_names_and_paths["streamingt2v"][0] == dirs
    assert host.list_files("streamingt2v") == ["a.safetensors", "sub/b.ckpt"], host.list_files("streamingt2v")
    assert host.full_path("streamingt2v", "sub/b.ckpt") == str(models / "streamingt2v" / "sub" / "b.ckpt")
    try:
        host.full_path("streamingt2v", "missing.safetensors")
        raise AssertionError("no error for a missing file")
    except errors.CheckpointError as e:
        assert "extra_model_paths.yaml" in str(e) and "missing.safetensors" in str(e)


@check
def hub_subfolders_are_selectable():
    assert host.list_files("stream_diffvsr") == ["raft_large.pth"]
    assert host.list_subfolders("stream_diffvsr") == ["hub1", "hub2"]
    assert host.list_subfolders("stream_diffvsr", marker="unet") == ["hub1"]
    assert host.subfolder_path("stream_diffvsr", "hub1") == str(models / "stream_diffvsr" / "hub1")


@check
def devices_and_dtypes_follow_comfyui():
    assert host.torch_device() == mm.get_torch_device() == torch.device("cpu")
    assert host.intermediate_device() == mm.intermediate_device()
    assert host.offload_device("vae") == mm.vae_offload_device()
    assert host.pick_dtype("auto", "text_encoder") == torch.float32  # ComfyUI says fp16 here; plain modules on CPU
    assert host.pick_dtype("bf16", "vae") == torch.bfloat16


class CoreLike(torch.nn.Module):
    """Like our core models: a read-only ``device`` property and a buffer-only child."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.table = torch.nn.Module()
        self.table.register_buffer("values", torch.arange(4.0))

    @property
    def device(self):
        return self.proj.weight.device

    def forward(self, x):
        return self.proj(x) + self.table.values


@check
def models_are_managed_by_comfyui():
    core = CoreLike()
    patcher = host.wrap_model(core)
    assert isinstance(patcher, comfy.model_patcher.ModelPatcher)
    assert patcher.load_device == mm.get_torch_device() and patcher.offload_device == mm.unet_offload_device()
    assert patcher.model_size() > 0
    (loaded,) = host.load_for_use([patcher])
    assert loaded is core and host.core_model(patcher) is core
    assert any(m.model is patcher for m in mm.current_loaded_models)
    assert loaded(torch.ones(1, 4)).shape == (1, 4)
    clone = patcher.clone()
    host.load_for_use([clone])


@check
def progress_reports_previews_and_honours_cancel():
    seen = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total, preview)))
    args.preview_method = LatentPreviewMethod.Latent2RGB
    on_step = host.progress_callback(10, node_id="7")
    frames = torch.rand(6, 8, 12, 3)
    on_step(3, 10, frames)
    on_step(4, 10, None)
    value, total, preview = seen[0]
    assert (value, total) == (3, 10) and preview[0] == "JPEG" and preview[2] == args.preview_size
    assert preview[1].size == (12 * 4, 8), preview[1].size  # the newest 4 frames side by side
    assert seen[1] == (4, 10, None)
    mm.interrupt_current_processing(True)
    try:
        on_step(5, 10, None)
        raise AssertionError("no interrupt")
    except mm.InterruptProcessingException:
        pass
    finally:
        mm.interrupt_current_processing(False)
    assert len(seen) == 2, "a cancelled step must not report progress"


@check
def previews_follow_the_preview_method_through_comfyuis_previewer():
    LatentPreview = importlib.import_module(module_name + ".streaming_core.progress").LatentPreview

    seen = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total, preview)))
    latents = torch.randn(1, 4, 16, 6, 10)
    try:
        args.preview_method = LatentPreviewMethod.NoPreviews  # ComfyUI's default: no previews of any kind
        on_step = host.progress_callback(10, node_id="7")
        on_step(1, 10, LatentPreview(latents))
        on_step(2, 10, torch.rand(4, 8, 8, 3))
        assert seen == [(1, 10, None), (2, 10, None)], seen
        for method in (LatentPreviewMethod.Latent2RGB, LatentPreviewMethod.TAESD):  # no TAESD file: RGB factors
            seen.clear()
            args.preview_method = method
            host.progress_callback(10, node_id="7")(3, 10, LatentPreview(latents))
            fmt, image, size = seen[0][2]
            reference = latent_preview.Latent2RGBPreviewer(latent_formats.SD15().latent_rgb_factors)
            expected = reference.decode_latent_to_preview(latents[:1, :, -1])  # the newest frame, SD 1.x factors
            assert (fmt, size) == ("JPEG", args.preview_size) and image.size == (10, 6), (fmt, image.size)
            assert list(image.getdata()) == list(expected.getdata()), method
    finally:
        args.preview_method = LatentPreviewMethod.NoPreviews


@check
def blend_choices_are_comfyuis_fuses_and_windows_match_its_static_schedule():
    assert list(host.context_windows.NATIVE_FUSES) == list(cw.ContextFuseMethods.LIST_STATIC)
    for frames in range(6, 60):
        for chunk, overlap in ((5, 3), (8, 2), (16, 4), (21, 7)):
            if frames <= chunk:
                continue
            handler = cw.IndexListContextHandler(None, None, context_length=chunk, context_overlap=overlap)
            native = cw.create_windows_static_standard(frames, handler, {})
            ours = [list(range(w.start, w.end)) for w in blend.chunk_windows(frames, chunk, overlap)]
            assert ours == native, (frames, chunk, overlap, ours, native)


@check
def patched_model_keeps_comfyuis_handler_contract():
    class FakeModel:  # the two ModelPatcher methods the patch uses
        def __init__(self):
            self.model_options = {"transformer_options": {}}
            self.wrappers = {}

        def clone(self):
            return copy.deepcopy(self)

        def add_wrapper_with_key(self, kind, key, fn):
            self.wrappers[(kind, key)] = fn

    patched = host.patch_model_with_blend(FakeModel(), "randomized", 5, 3, 2, 7)
    handler = patched.model_options["context_handler"]
    assert isinstance(handler, cw.IndexListContextHandler) and handler.dim == 2 and handler.context_length == 5
    assert any(kind == "prepare_sampling" for kind, _ in patched.wrappers)
    copy.deepcopy(patched.model_options)  # ModelPatcher.clone deep-copies model_options


@check
def latent_layouts_of_native_families():
    expected = {"Wan21": (2, 4), "Wan22": (2, 4), "HunyuanVideo": (2, 4), "LTXV": (2, 8), "Mochi": (2, 6),
                "Cosmos1CV8x8x8": (2, 8), "HunyuanImage21Refiner": (2, 4), "SD15": (0, 1), "SDXL": (0, 1), "Flux": (0, 1)}
    for name, (dim, ratio) in expected.items():
        fmt = getattr(latent_formats, name)()
        model = type("M", (), {"get_model_object": lambda self, key, fmt=fmt: fmt})()
        layout = host.latent_layout(model)
        assert (layout.dim, layout.temporal_compression) == (dim, ratio), (name, layout)


print(json.dumps(results))
