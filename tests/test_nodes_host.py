"""nodes/host without ComfyUI: the plain-PyTorch fallbacks that let node functions run in CI."""

from __future__ import annotations

import pytest
import torch

from pack_loader import load_pack
from streaming_core.errors import CheckpointError, InputError, UserFacingError
from streaming_core.progress import no_progress

PACK = load_pack()
host = PACK.nodes.host


def test_no_comfyui_here():
    assert not host.in_comfyui()
    assert host.comfy_module("comfy.model_management") is None


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMING_MODELS_DIR", str(tmp_path))
    for rel in ("streamingt2v/base.safetensors", "streamingt2v/enhancer/unet.pth", "streamingt2v/readme.txt",
                "streamingt2v/.cache/hidden.bin", "stream_diffvsr/raft_large.pth",
                "stream_diffvsr/v1/unet/diffusion_pytorch_model.safetensors", "stream_diffvsr/notes/a.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    return tmp_path


def test_files_and_folders_resolve_under_the_models_dir(models):
    assert host.folder_dirs("streamingt2v") == [str(models / "streamingt2v")]
    assert host.list_files("streamingt2v") == ["base.safetensors", "enhancer/unet.pth"]
    assert host.full_path("streamingt2v", "enhancer/unet.pth") == str(models / "streamingt2v" / "enhancer" / "unet.pth")
    assert host.list_subfolders("stream_diffvsr") == ["notes", "v1"]
    assert host.list_subfolders("stream_diffvsr", marker="unet") == ["v1"]
    assert host.subfolder_path("stream_diffvsr", "v1") == str(models / "stream_diffvsr" / "v1")


def test_missing_or_escaping_names_are_clear_errors(models):
    with pytest.raises(CheckpointError, match=r"'gone.safetensors' is not in the 'streamingt2v' model folders.*extra_model_paths"):
        host.full_path("streamingt2v", "gone.safetensors")
    (models / "secret.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError):
        host.full_path("streamingt2v", "../secret.safetensors")
    with pytest.raises(CheckpointError, match="Model folder"):
        host.subfolder_path("stream_diffvsr", "v2")


def test_devices_and_dtypes_fall_back_to_cpu_fp32():
    cpu = torch.device("cpu")
    assert host.torch_device() == host.intermediate_device() == host.load_device("vae") == host.offload_device() == cpu
    assert host.pick_dtype("auto") == torch.float32
    assert host.pick_dtype("fp16", "text_encoder") == torch.float16
    assert host.pick_dtype("bf16", "vae") == torch.bfloat16
    with pytest.raises(InputError, match="auto, fp16, bf16, fp32|one of"):
        host.pick_dtype("fp8")
    with pytest.raises(ValueError):
        host.pick_dtype("auto", role="unet")


class CoreModel(torch.nn.Module):
    """Like the core models: ``device`` is a read-only property, which ComfyUI must not overwrite."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 2)

    @property
    def device(self):
        return self.proj.weight.device

    def forward(self, x):
        return self.proj(x)


def test_wrapped_models_load_and_hand_back_the_core_model():
    core = CoreModel()
    patcher = host.wrap_model(core, role="text_encoder")
    assert isinstance(patcher.model, host.HostedModel) and host.core_model(patcher) is core
    assert patcher.model_size() == sum(p.numel() * 4 for p in core.parameters())
    (loaded,) = host.load_for_use([patcher])
    assert loaded is core and loaded.device == patcher.load_device
    assert patcher.model(torch.ones(1, 3)).shape == (1, 2)


def test_progress_without_comfyui_is_silent_and_previews_are_the_newest_frames():
    assert host.progress_callback(10) is no_progress
    frames = torch.zeros(6, 4, 5, 3)
    frames[-1] = 1.0
    image = host.preview_image(frames, max_frames=2)
    assert image.size == (10, 4)
    import numpy as np

    pixels = torch.from_numpy(np.array(image))
    assert (pixels[:, :5] == 0).all() and (pixels[:, 5:] == 255).all()
    assert host.preview_image(None) is None


def test_image_conversions_check_and_place_frames():
    image = torch.rand(3, 8, 8, 4, dtype=torch.float64)
    frames = host.image_to_frames(image)
    assert frames.shape == (3, 8, 8, 3) and frames.dtype == torch.float32
    out = host.frames_to_image(frames * 2 - 0.5)
    assert out.device == torch.device("cpu") and out.min() >= 0 and out.max() <= 1
    with pytest.raises(InputError, match="IMAGE batch"):
        host.image_to_frames(torch.rand(8, 8, 3))
    with pytest.raises(InputError, match="no frames"):
        host.image_to_frames(torch.rand(0, 8, 8, 3))


def _model_with_format(*class_names, latent_dimensions=None):
    """A stand-in MODEL whose latent format's class hierarchy carries these names."""
    cls = object
    for name in reversed(class_names):
        cls = type(name, (cls,), {} if latent_dimensions is None else {"latent_dimensions": latent_dimensions})
    fmt = cls()
    return type("Model", (), {"get_model_object": lambda self, key: fmt})()


def test_latent_layout_from_the_latent_format_family():
    assert host.latent_layout(_model_with_format("Wan22", "Wan21")) == host.LatentLayout(2, 4, "Wan22")
    assert host.latent_layout(_model_with_format("LTXV")).temporal_compression == 8
    assert host.latent_layout(_model_with_format("Mochi")).temporal_compression == 6
    assert host.latent_layout(_model_with_format("SD15", latent_dimensions=2)) == host.LatentLayout(0, 1, "SD15")
    assert host.latent_layout(_model_with_format("FutureVideo", latent_dimensions=3)).temporal_compression is None


def test_resolve_layout_honours_explicit_choices_and_explains_unknown_models():
    wan = _model_with_format("Wan21")
    assert (host.resolve_layout(wan, "auto", "auto").dim, host.resolve_layout(wan, "auto", "auto").temporal_compression) == (2, 4)
    assert host.resolve_layout(wan, "auto", "8x").temporal_compression == 8
    assert host.resolve_layout(wan, "batch", "auto") == host.LatentLayout(0, 1, "Wan21")
    with pytest.raises(InputError, match="set temporal_compression by hand"):
        host.resolve_layout(_model_with_format("FutureVideo", latent_dimensions=3), "auto", "auto")
    with pytest.raises(InputError, match="frame_axis"):
        host.resolve_layout(wan, "depth", "auto")


def test_blend_node_validates_before_it_needs_comfyui():
    node = PACK.NODE_CLASS_MAPPINGS["ST2VRandomizedBlendModel"]()
    wan = _model_with_format("Wan21")
    with pytest.raises(InputError, match="lower context_overlap"):
        node.patch(wan, 81, 81, "randomized", 0, "auto", "auto")
    with pytest.raises(UserFacingError, match="inside ComfyUI"):
        node.patch(wan, 81, 25, "randomized", 0, "auto", "auto")
    assert list(host.BLEND_CHOICES) == node.INPUT_TYPES()["required"]["blend"][0]


# -- previews follow ComfyUI's --preview-method --------------------------------------------------------
class _RecordingPreviewer:
    """Stands in for ComfyUI's previewer: records the latent it is given, returns a marker image."""

    def __init__(self):
        self.latents = []

    def decode_latent_to_preview(self, x0):
        self.latents.append(x0)
        return "image"


def _renderer(method, previewer=None):
    asked = []

    def latent_previewer(family, device):
        asked.append((family, device))
        return previewer

    return host.PreviewRenderer(method, latent_previewer), asked


def test_preview_method_none_sends_no_previews_at_all():
    from streaming_core.progress import LatentPreview

    render, asked = _renderer("none", _RecordingPreviewer())
    assert render(torch.rand(3, 4, 5, 3)) is None
    assert render(LatentPreview(torch.randn(1, 4, 16, 2, 2))) is None
    assert asked == [], "with previews off no previewer is even made"


@pytest.mark.parametrize("method", ["auto", "latent2rgb", "taesd"])
def test_latent_previews_go_to_comfyuis_previewer_with_the_newest_frame(method):
    from streaming_core.progress import SD_LATENTS, LatentPreview

    previewer = _RecordingPreviewer()
    render, asked = _renderer(method, previewer)
    latents = torch.randn(2, 4, 16, 3, 5)
    assert render(LatentPreview(latents)) == "image" and render(LatentPreview(latents * 2)) == "image"
    assert asked == [(SD_LATENTS, latents.device)], "one previewer per latent family and device, made once"
    assert torch.equal(previewer.latents[0], latents[:1, :, -1]) and previewer.latents[0].shape == (1, 4, 3, 5)
    frames = torch.zeros(6, 4, 5, 3)
    assert render(frames).size == (5 * 4, 4), "decoded frames are sent as a strip of the newest 4"
    assert render(None) is None


def test_a_latent_family_without_a_previewer_sends_nothing():
    from streaming_core.progress import LatentPreview

    render, _ = _renderer("latent2rgb", None)
    assert render(LatentPreview(torch.randn(1, 4, 2, 2, 2))) is None


def test_show_text_outside_comfyui_is_silent():
    host.show_text("Resumed from frame 24", "3")  # no server: nothing to tell, nothing raised
