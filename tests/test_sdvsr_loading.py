"""Loading Stream-DiffVSR from the hub folder layout (the tiny one, written under the real names),
what a broken folder gets, and the ``upscale`` command end to end."""

from __future__ import annotations

import shutil

import pytest
import torch

from streaming_core.checkpoints.sdvsr import RAFT_FILE_NAME, list_model_folders, load_sdvsr, load_tokenizer
from streaming_core.cli import main
from streaming_core.errors import CheckpointError
from streaming_core.pipelines.upscale import UpscaleSettings, upscale_stream
from streaming_core.tiny.sdvsr import build_tiny_sdvsr, write_tiny_sdvsr


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_sdvsr(tmp_path_factory.mktemp("models"), name="tiny", seed=0)


@pytest.fixture(scope="module")
def loaded(tiny_dir):
    return load_sdvsr(tiny_dir.folder)


def _copy(tiny_dir, tmp_path):
    root = tmp_path / "stream_diffvsr"
    shutil.copytree(tiny_dir.folder.parent, root, symlinks=True)
    return root / tiny_dir.folder.name


def test_tiny_folder_has_the_hub_layout(tiny_dir):
    names = {p.relative_to(tiny_dir.folder).as_posix() for p in tiny_dir.folder.rglob("*") if p.is_file()}
    assert {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
            "controlnet/diffusion_pytorch_model.safetensors", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
            "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json"} <= names
    assert tiny_dir.raft.name == RAFT_FILE_NAME and tiny_dir.raft.parent == tiny_dir.folder.parent
    assert not any(p.name.startswith(".") or "partial" in p.name for p in tiny_dir.folder.parent.iterdir())
    assert list_model_folders(tiny_dir.folder.parent) == ["tiny"]


def test_loader_reproduces_the_tiny_models_exactly(tiny_dir, loaded):
    built = build_tiny_sdvsr(seed=0)
    for part in ("unet", "controlnet", "vae"):
        ours, ref = getattr(loaded, part).state_dict(), getattr(built, part).state_dict()
        assert ours.keys() == ref.keys() and all(torch.equal(ours[k], ref[k]) for k in ref), part
    assert loaded.unet.config.attention_head_dim == 2  # from unet/config.json (shapes alone would say 4)
    assert loaded.unet.config.norm_num_groups == 4
    # CLIP("") through the folder's CLIPTokenizer files == through open_clip's packaged vocabulary
    torch.testing.assert_close(loaded.prompt_embeds, built.prompt_embeds, atol=0, rtol=0)
    frames = torch.rand(2, 12, 16, 3, generator=torch.Generator().manual_seed(1))
    a = torch.stack(list(upscale_stream(loaded, frames, settings=UpscaleSettings(seed=2))))
    b = torch.stack(list(upscale_stream(built, frames, settings=UpscaleSettings(seed=2))))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # same weights; memory alignment may change kernels


def test_empty_prompt_tokens_are_the_sd2_ones(tiny_dir):
    ids = load_tokenizer(tiny_dir.folder / "tokenizer")("")
    assert ids.shape == (1, 77) and ids[0, :3].tolist() == [49406, 49407, 0] and ids[0, 2:].eq(0).all()
    assert torch.equal(load_tokenizer(None)(""), ids)


def test_embedding_is_computed_from_the_weights_not_zeros(loaded):
    assert loaded.prompt_embeds.shape == (1, 77, 20) and loaded.prompt_embeds.abs().mean() > 0.1


def test_missing_subfolder_is_named(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    shutil.rmtree(folder / "controlnet")
    with pytest.raises(CheckpointError, match=r"controlnet/.*ARTG.*Jamichsu/Stream-DiffVSR"):
        load_sdvsr(folder)


def test_missing_weight_file_is_named(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"vae holds no weight file.*download the folder 'vae/'"):
        load_sdvsr(folder)


def test_missing_raft_file_says_where_to_get_it(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    (folder.parent / RAFT_FILE_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"raft_large_C_T_SKHT_V2-ff5fadd5\.pth.*download\.pytorch\.org"):
        load_sdvsr(folder)


def test_truncated_unet_file_is_reported(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_sdvsr(folder)


def test_a_part_from_another_model_is_refused(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    shutil.copy(folder / "controlnet" / "diffusion_pytorch_model.safetensors",
                folder / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError, match="unet"):
        load_sdvsr(folder)


def test_pickled_text_encoder_and_raft_load_safely(tiny_dir, tmp_path):
    """.bin / .pth files (torch.save of plain tensors) load through torch.load(weights_only=True)."""
    from safetensors.torch import load_file

    folder = _copy(tiny_dir, tmp_path)
    te = folder / "text_encoder"
    torch.save(load_file(str(te / "model.safetensors")), te / "pytorch_model.bin")
    (te / "model.safetensors").unlink()
    shutil.rmtree(folder / "tokenizer")  # falls back to the packaged vocabulary
    models = load_sdvsr(folder, folder.parent / RAFT_FILE_NAME)
    assert models.prompt_embeds.abs().mean() > 0.1


def test_upscale_command_writes_a_4x_video(tiny_dir, tmp_path):
    from streaming_core.video_io import video_info, write_video

    src = tmp_path / "in.mp4"
    write_video(src, torch.rand(3, 12, 16, 3, generator=torch.Generator().manual_seed(3)), fps=6)
    out = tmp_path / "out.mp4"
    rc = main(["upscale", "--sdvsr", str(tiny_dir.folder), "--video", str(src), "--out", str(out), "--seed", "1",
               "--tile", "32", "--tile-overlap", "8"])
    assert rc == 0
    info = video_info(out)
    assert (info["width"], info["height"], info["frames"]) == (64, 48, 3)


def test_upscale_command_interrupted_leaves_no_file(tiny_dir, tmp_path, monkeypatch, capsys):
    from streaming_core.pipelines import upscale as upscale_module
    from streaming_core.video_io import write_video

    src = tmp_path / "in.mp4"
    write_video(src, torch.rand(3, 12, 16, 3), fps=6)
    original = upscale_module.UpscaleStream._upscale_one

    def interrupt_second(self, frame, index):
        if index == 1:
            raise KeyboardInterrupt
        return original(self, frame, index)

    monkeypatch.setattr(upscale_module.UpscaleStream, "_upscale_one", interrupt_second)
    out = tmp_path / "out.mp4"
    rc = main(["upscale", "--sdvsr", str(tiny_dir.folder), "--video", str(src), "--out", str(out)])
    assert rc == 130
    assert "interrupted after 1 frames" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]


def test_missing_folder_error_from_the_command(tmp_path, capsys):
    src = tmp_path / "in.mp4"
    from streaming_core.video_io import write_video

    write_video(src, torch.rand(1, 12, 16, 3), fps=6)
    rc = main(["upscale", "--sdvsr", str(tmp_path / "nope"), "--video", str(src), "--out", str(tmp_path / "o.mp4")])
    assert rc == 2 and "Stream-DiffVSR folder not found" in capsys.readouterr().err
