"""The ``demo``, ``generate`` and ``bench`` commands, run in-process on the tiny models."""

from __future__ import annotations

import torch

from streaming_core.cli import main
from streaming_core.video_io import VideoWriter, read_video, to_uint8, video_info

FAST = ["--steps", "2", "--base-steps", "2"]


def test_demo_writes_a_playable_mp4(tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    assert main(["demo", "--frames", "19", "--seed", "1", "--out", str(out)] + FAST) == 0
    assert "PIPELINE DEMO" in capsys.readouterr().err
    assert video_info(out)["fps"] == 8
    frames = read_video(out)
    assert frames.shape == (19, 64, 64, 3)
    assert frames.std() > 0.01  # decoded pictures, not an empty stream
    assert not (tmp_path / "demo.mp4.state").exists()  # the resume state goes after a finished run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4"]  # nothing half-written left


def test_generate_without_weights_runs_the_demo_loudly(tmp_path, capsys):
    out = tmp_path / "long.mp4"
    rc = main(["generate", "--prompt", "a boat", "--frames", "17", "--models-dir", str(tmp_path / "models"),
               "--out", str(out)] + FAST)
    assert rc == 0
    err = capsys.readouterr().err
    assert "NO WEIGHTS FOUND" in err and "PIPELINE DEMO" in err
    assert read_video(out).shape[0] == 17


def test_generate_with_weights_in_models_dir(tmp_path, capsys):
    from streaming_core.cli.demo import tiny_models
    from streaming_core.tiny.modelscope import write_tiny_modelscope
    from streaming_core.tiny.st2v import write_tiny_safetensors

    st2v, base = tiny_models()
    models = tmp_path / "models"
    write_tiny_safetensors(st2v, models / "streamingt2v" / "streaming_t2v.safetensors", dtype=torch.float16)
    write_tiny_modelscope(base, models / "streamingt2v" / "text-to-video-ms-1.7b", dtype=torch.float16)
    out = tmp_path / "v.mp4"
    rc = main(["generate", "--models-dir", str(models), "--prompt", "a boat", "--prompt", "a boat at night",
               "--frames", "25", "--height", "64", "--width", "64", "--device", "cpu", "--dtype", "fp32",
               "--out", str(out)] + FAST)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "DEMO" not in err
    assert read_video(out).shape == (25, 64, 64, 3)
    # only one of the two files: a clear error naming what is missing
    (models / "streamingt2v" / "streaming_t2v.safetensors").unlink()
    assert main(["generate", "--models-dir", str(models), "--prompt", "x", "--out", str(out)]) == 2
    assert "no StreamingT2V checkpoint" in capsys.readouterr().err


def test_cli_resume_continues_to_the_uninterrupted_video(tmp_path, capsys, monkeypatch):
    """The frames handed to the encoder are compared, not the mp4s: libx264 does not always give the same
    bytes for the same frames (the first keyframe of two files made from identical frames, in identical
    batches, in one process, has differed), so only the frames are promised identical."""
    encoded: dict[str, list[torch.Tensor]] = {}
    write = VideoWriter.write

    def recording_write(self, frames):
        encoded.setdefault(self.path.name, []).append(to_uint8(frames if frames.ndim == 4 else frames[None]))
        return write(self, frames)

    monkeypatch.setattr(VideoWriter, "write", recording_write)
    common = ["demo", "--seed", "3", "--prompt", "a boat"] + FAST
    direct = tmp_path / "direct.mp4"
    assert main(common + ["--frames", "25", "--out", str(direct)]) == 0
    part = tmp_path / "part.mp4"
    assert main(common + ["--frames", "17", "--out", str(part), "--keep-state"]) == 0
    state = tmp_path / "part.mp4.state"
    assert state.is_dir()
    # a new run does not silently overwrite an unfinished run's state
    assert main(common + ["--frames", "25", "--out", str(part)]) == 2
    assert "--resume" in capsys.readouterr().err
    # settings that differ from the saved run's are refused
    assert main(["demo", "--seed", "4", "--prompt", "a boat", "--frames", "40", "--out", str(tmp_path / "x.mp4"),
                 "--resume", str(state)] + FAST) == 2
    assert "seed" in capsys.readouterr().err
    resumed = tmp_path / "resumed.mp4"
    assert main(common + ["--frames", "25", "--out", str(resumed), "--resume", str(state)]) == 0
    # the 17-frame run saved two whole chunks (16 + 8 frames); the resumed run says where it picks up
    assert ("Resumed from frame 24 (frames 0-23 from the saved run, 1 more to make; state part.mp4.state)"
            in capsys.readouterr().err)
    assert torch.equal(torch.cat(encoded["resumed.mp4"]), torch.cat(encoded["direct.mp4"]))
    assert read_video(resumed).shape == read_video(direct).shape == (25, 64, 64, 3)
    assert not state.exists()  # finished: the state is gone


def test_generate_argument_errors(tmp_path, capsys):
    base = ["demo", "--frames", "17", "--out", str(tmp_path / "x.mp4")] + FAST
    assert main(base + ["--guidance", "5", "--text-guidance", "5"]) == 2
    assert "either --guidance" in capsys.readouterr().err
    assert main(["demo", "--frames", "12", "--out", str(tmp_path / "y.mp4")] + FAST) == 2
    assert "at least 16" in capsys.readouterr().err
    assert main(base + ["--anchor", str(tmp_path / "missing.png")]) == 2
    assert "anchor image not found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no output file, no state for runs that never started


def test_bench_arguments_and_tiny_run(capsys):
    from streaming_core.cli.demo import tiny_models
    from streaming_core.pipelines.generate_benchmark import benchmark_extend

    assert main(["bench", "--full", "--device", "cpu"]) == 2
    assert "meant for a GPU" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    assert main(["bench", "--steps", "1"]) == 2
    result = benchmark_extend(steps=2, models=(tiny_models()[0], None))
    assert (result.stage, result.frames, result.steps, result.official_steps) == ("extend", 8, 2, 50)
    assert result.memory_kind == "process peak RSS" and "s/frame" in result.line()


def test_full_size_models_have_the_official_parameter_counts():
    """What ``bench --full`` builds on the GPU, built here on the meta device (spec §1.1, §5)."""
    from streaming_core.models.streamingt2v import StreamingT2V
    from streaming_core.models.unet3d import UNet3D
    from streaming_core.pipelines.generate_benchmark import full_size_modelscope_config, full_size_streamingt2v_config

    with torch.device("meta"):
        model = StreamingT2V(full_size_streamingt2v_config())
        base = UNet3D(full_size_modelscope_config())
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in model.components().items()}
    assert counts == {"unet": 1_480_478_804, "cam": 621_981_664, "resampler": 22_299_904,
                      "image_encoder": 632_076_800, "text_encoder": 340_387_840, "vae": 83_653_863}
    assert sum(p.numel() for p in base.parameters()) == 1_411_233_860


def test_extend_a_given_video_with_an_anchor_image(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from streaming_core.cli.demo import tiny_models
    from streaming_core.pipelines import extend as extend_module
    from streaming_core.pipelines.long_video import encode_anchor
    from streaming_core.video_io import write_video

    # what reaches the extension step of the loop: its APM tokens and guidance scales, and the UNet batches
    calls, batches = [], []
    real = extend_module.extend_chunk

    def spy(model, cam_frames, cond, settings, **kw):
        calls.append({"anchor": cond.anchor.detach().cpu().clone(), "guidance": settings.guidance,
                      "anchor_guidance": settings.anchor_guidance})
        return real(model, cam_frames, cond, settings, **kw)

    monkeypatch.setattr(extend_module, "extend_chunk", spy)
    model = tiny_models()[0]
    hook = model.unet.register_forward_pre_hook(lambda m, a: batches.append(a[0].shape[0]))
    try:
        given = torch.rand(10, 64, 64, 3, generator=torch.Generator().manual_seed(0))
        write_video(tmp_path / "in.mp4", given)
        Image.new("RGB", (90, 30), (200, 30, 30)).save(tmp_path / "anchor.png")
        out = tmp_path / "out.mp4"
        rc = main(["demo", "--init-video", str(tmp_path / "in.mp4"), "--anchor", str(tmp_path / "anchor.png"),
                   "--frames", "20", "--out", str(out)] + FAST)
        assert rc == 0, capsys.readouterr().err
        frames = read_video(out)
        assert frames.shape == (20, 64, 64, 3)
        # the given frames come first (through two lossy encodes)
        assert (frames[:10] - read_video(tmp_path / "in.mp4")).abs().mean() < 0.05
        # both extension chunks are conditioned on the anchor image's tokens, not on frame 0's (the default)
        with torch.inference_mode():
            red = torch.tensor([200 / 255, 30 / 255, 30 / 255]).expand(30, 90, 3)
            anchor_tokens = encode_anchor(model, red, 64, 64).tokens.cpu()
            frame0_tokens = encode_anchor(model, read_video(tmp_path / "in.mp4")[:1]).tokens.cpu()
        assert (anchor_tokens - frame0_tokens).abs().max() > 1e-2  # the check below can tell them apart
        assert len(calls) == 2
        for call in calls:
            torch.testing.assert_close(call["anchor"], anchor_tokens, rtol=0, atol=1e-5)
            assert (call["guidance"], call["anchor_guidance"]) == (7.5, None)  # official joint guidance
        assert batches == [2] * 4  # 2 chunks x 2 steps, [uncond, cond] in one forward

        # paper eq. 12: separate text and anchor scales reach the loop and take the 3-pass batch
        calls.clear(), batches.clear()
        assert main(["demo", "--init-video", str(tmp_path / "in.mp4"), "--text-guidance", "5",
                     "--anchor-guidance", "2", "--frames", "18", "--out", str(tmp_path / "eq12.mp4")] + FAST) == 0
        assert read_video(tmp_path / "eq12.mp4").shape == (18, 64, 64, 3)
        assert [(c["guidance"], c["anchor_guidance"]) for c in calls] == [(5.0, 2.0)]
        torch.testing.assert_close(calls[0]["anchor"], frame0_tokens, rtol=0, atol=1e-5)  # no --anchor: frame 0
        assert batches == [3] * 2  # (empty, grey), (empty, anchor), (prompt, anchor) per step
    finally:
        hook.remove()
    assert main(["demo", "--init-video", str(tmp_path / "in.mp4"), "--frames", "10", "--out",
                 str(tmp_path / "o2.mp4")] + FAST) == 2
    assert "already has 10 frames" in capsys.readouterr().err


def test_generate_with_vidxtend_takes_the_image_encoder_from_clip_vision(tmp_path, capsys):
    from streaming_core.cli.demo import tiny_models
    from streaming_core.tiny.modelscope import write_tiny_modelscope
    from streaming_core.tiny.vidxtend import write_clip_vision_file, write_vidxtend_file

    st2v, base = tiny_models()
    models = tmp_path / "models"
    write_vidxtend_file(st2v, models / "streamingt2v" / "vidxtend.fp16.safetensors", dtype=torch.float16)
    write_tiny_modelscope(base, models / "streamingt2v" / "text-to-video-ms-1.7b", dtype=torch.float16)
    args = ["generate", "--models-dir", str(models), "--prompt", "a boat", "--frames", "17", "--height", "64",
            "--width", "64", "--device", "cpu", "--dtype", "fp32", "--out", str(tmp_path / "v.mp4")] + FAST
    # no image encoder anywhere: the error says which files work
    assert main(args) == 2
    assert "clip_vision" in capsys.readouterr().err
    write_clip_vision_file(st2v, models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "with the image encoder of" in err and "CLIP-ViT-H-14" in err
    assert read_video(tmp_path / "v.mp4").shape == (17, 64, 64, 3)


def test_generate_finds_the_vidxtend_folder_form(tmp_path):
    from streaming_core.cli.generate import find_st2v

    folder = tmp_path / "streamingt2v" / "vidxtend"
    folder.mkdir(parents=True)
    assert find_st2v(tmp_path) is None  # an empty folder of that name is not a model
    (folder / "resampler").mkdir()  # VidXTend's diffusers layout: resampler/, unet/, controlnet/, ...
    assert find_st2v(tmp_path) == folder
    (tmp_path / "streamingt2v" / "streaming_t2v.ckpt").write_bytes(b"")
    assert find_st2v(tmp_path) == tmp_path / "streamingt2v" / "streaming_t2v.ckpt"  # the official file first


def test_generate_with_offload_writes_the_same_frames(tmp_path, capsys, monkeypatch):
    """``--offload layers`` (networks taking turns, the UNets streamed layer by layer) changes no frame
    (compared before H.264, whose encoder is not deterministic run to run)."""
    from streaming_core import video_io
    from streaming_core.cli.demo import tiny_models
    from streaming_core.tiny.modelscope import write_tiny_modelscope
    from streaming_core.tiny.st2v import write_tiny_safetensors

    st2v, base = tiny_models()
    models = tmp_path / "models"
    write_tiny_safetensors(st2v, models / "streamingt2v" / "streaming_t2v.safetensors")
    write_tiny_modelscope(base, models / "streamingt2v" / "text-to-video-ms-1.7b")
    written = []
    write = video_io.VideoWriter.write
    monkeypatch.setattr(video_io.VideoWriter, "write", lambda self, frames: (written.append(torch.as_tensor(frames)),
                                                                              write(self, frames))[1])
    videos = {}
    for offload in ("none", "layers"):
        written.clear()
        rc = main(["generate", "--models-dir", str(models), "--prompt", "a boat", "--frames", "17", "--height", "64",
                   "--width", "64", "--device", "cpu", "--dtype", "fp32", "--offload", offload,
                   "--out", str(tmp_path / f"{offload}.mp4")] + FAST)
        assert rc == 0, capsys.readouterr().err
        videos[offload] = torch.cat([f.reshape(-1, *f.shape[-3:]) for f in written])
    assert videos["none"].shape[0] == 17
    assert torch.equal(videos["none"], videos["layers"])


def test_generate_finds_the_checkpoint_in_comfyuis_checkpoints_folder(tmp_path):
    from streaming_core.cli.generate import find_st2v

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "streaming_t2v.ckpt").write_bytes(b"")  # where the older port kept it
    assert find_st2v(tmp_path) == tmp_path / "checkpoints" / "streaming_t2v.ckpt"
    (tmp_path / "streamingt2v").mkdir()
    (tmp_path / "streamingt2v" / "vidxtend.fp16.safetensors").write_bytes(b"")
    assert find_st2v(tmp_path) == tmp_path / "streamingt2v" / "vidxtend.fp16.safetensors"  # the pack's folder first
