"""make-tiny writes every model under its real folder and file names, idempotently, loadable by the
real loaders (the node tests then run every node on this tree)."""

from __future__ import annotations

import pytest
import torch

from streaming_core.cli import main
from streaming_core.tiny.tree import RAFT_FILE, TINY_MODELS, extra_model_paths_yaml
from tiny_models_tree import tiny_models_dir


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return tiny_models_dir(tmp_path_factory)


def test_every_registered_model_is_in_the_tree_under_its_real_name(tree):
    expected = {
        "streamingt2v/streaming_t2v.ckpt",
        "streamingt2v/text-to-video-ms-1.7b/unet/diffusion_pytorch_model.safetensors",
        "streamingt2v/non_ema_0035000.pth", "streamingt2v/open_clip_pytorch_model.bin",
        "streamingt2v/v2-1_512-ema-pruned.ckpt", "streamingt2v/zeroscope_v2_XL/unet/diffusion_pytorch_model.safetensors",
        f"stream_diffvsr/{RAFT_FILE}", "stream_diffvsr/Stream-DiffVSR/unet/diffusion_pytorch_model.safetensors",
    }
    registered = {path for model in TINY_MODELS for path in model.paths}
    assert expected <= registered
    assert all((tree / path).is_file() for path in registered)
    assert not list(tree.rglob("*.partial")), "atomic writes leave no partial files"


def test_streamingt2v_is_an_official_style_checkpoint_loadable_weights_only(tree):
    ckpt = torch.load(tree / "streamingt2v" / "streaming_t2v.ckpt", weights_only=True, mmap=True)
    keys = ckpt["state_dict"].keys()
    assert {"epoch", "global_step"} <= set(ckpt)
    for prefix in ("base_model.", "unet.controlnet_cond_embedding.", "resampler.", "image_encoder.", "text_encoder.",
                   "vae."):
        assert any(k.startswith(prefix) for k in keys), prefix


def test_everything_loads_through_the_real_loaders(tree):
    from streaming_core.checkpoints.enhancer import load_enhancer
    from streaming_core.checkpoints.modelscope import load_modelscope_unet
    from streaming_core.checkpoints.sdvsr import load_sdvsr
    from streaming_core.checkpoints.st2v import load_streamingt2v

    st2v = tree / "streamingt2v"
    model = load_streamingt2v(st2v / "streaming_t2v.ckpt")
    assert model.text_encoder is not None and model.image_encoder is not None and model.vae is not None
    assert not load_modelscope_unet(st2v / "text-to-video-ms-1.7b").config.cam_mergers
    assert load_enhancer(st2v).kind == "ms_vid2vid_xl"
    assert load_enhancer(st2v / "zeroscope_v2_XL").kind == "diffusers_unet3d"
    assert load_sdvsr(tree / "stream_diffvsr" / "Stream-DiffVSR").scale == 4


def test_command_is_idempotent_prints_what_it_wrote_and_writes_the_yaml(tmp_path, capsys):
    yaml = tmp_path / "extra_model_paths.yaml"
    args = ["make-tiny", "--models-dir", str(tmp_path / "m"), "--only", "Stream-DiffVSR", "--yaml", str(yaml)]
    assert main(args) == 0
    out = capsys.readouterr().out
    raft = tmp_path / "m" / "stream_diffvsr" / RAFT_FILE
    assert f"wrote    {raft}" in out and "streaming_t2v.ckpt" not in out
    assert not (tmp_path / "m" / "streamingt2v").exists(), "--only restricts what is written"
    assert yaml.read_text() == extra_model_paths_yaml(tmp_path / "m")
    assert f"base_path: {(tmp_path / 'm').resolve()}" in yaml.read_text() and "stream_diffvsr: stream_diffvsr" in yaml.read_text()
    stamp = raft.stat().st_mtime_ns
    assert main(args[:-2]) == 0
    assert "exists   Stream-DiffVSR" in capsys.readouterr().out and raft.stat().st_mtime_ns == stamp
    assert main(args[:-2] + ["--force"]) == 0
    assert raft.stat().st_mtime_ns != stamp


def test_list_names_every_model(capsys):
    assert main(["make-tiny", "--models-dir", "unused", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(model.name in out for model in TINY_MODELS)


def test_the_tree_says_it_holds_tiny_test_weights(tree):
    """The commands name tiny test weights by size; the marker says where they came from."""
    from streaming_core.tiny.marker import MARKER, tiny_tree_of

    assert "make-tiny" in (tree / MARKER).read_text()
    assert tiny_tree_of(tree / "streamingt2v" / "streaming_t2v.ckpt") == tree.resolve()
