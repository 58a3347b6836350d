"""The streamed refiner on the tiny enhancer: wavefront = lock-step bitwise through the real guided UNet,
resume after an exception (pipeline and CLI) equals the uninterrupted run, foreign state refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streaming_core.checkpoints.enhancer import load_enhancer
from streaming_core.cli import main
from streaming_core.errors import Cancelled, InputError
from streaming_core.pipelines.refine import RefineSettings, file_source, frames_source, refine_stream
from streaming_core.pipelines.refine_state import RefineStateFolder
from streaming_core.sampling.blend import chunk_windows
from streaming_core.sampling.guided_model import enhancer_chunk_model
from streaming_core.sampling.keyed_draws import lockstep_draws
from streaming_core.sampling.sdedit import SDEditReplay, SDEditSettings, sdedit_windows
from streaming_core.sampling.wavefront import wavefront_sdedit
from streaming_core.tiny.enhancer import TINY_RESOLUTION, write_tiny_enhancers
from streaming_core import video_io
from streaming_core.video_io import read_video, write_video

SETTINGS = RefineSettings(chunk=8, overlap=4, steps=2, resolution=TINY_RESOLUTION)


def stream(enhancer, frames, prompt="a red car", settings=SETTINGS, **kw):
    return refine_stream(enhancer, frames_source(frames), prompt, "", settings, previews=False, **kw)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return write_tiny_enhancers(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def enhancer(tiny_models):
    return load_enhancer(tiny_models["ms_vid2vid_xl"])


def video(frames=20, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, size, size, 3, generator=g)
    return (base + torch.linspace(0, 0.3, frames).view(-1, 1, 1, 1)).clamp(0, 1)


def run_all(enhancer, frames, **kw):
    return torch.cat(list(stream(enhancer, frames, **kw)))


@pytest.mark.parametrize("mode", ["randomized", "shared_noise", "independent"])
def test_wavefront_equals_lockstep_bitwise_through_the_tiny_guided_unet(enhancer, mode):
    model = enhancer_chunk_model(enhancer, *enhancer.encode_prompts("a red car"), 7.5)
    z0 = torch.randn(1, 4, 22, 4, 4, generator=torch.Generator().manual_seed(1))
    settings = SDEditSettings(599, 3, chunk=8, overlap=3, mode=mode, seed=5, sde_noise="gaussian", init=enhancer.init)
    replay = SDEditReplay(*lockstep_draws(z0[:, :, 0].shape, chunk_windows(22, 8, 3), mode, 5, None, 3))
    expected = sdedit_windows(model, z0, enhancer.table, settings, prediction_type=enhancer.prediction_type,
                              replay=replay)
    got = torch.cat(list(wavefront_sdedit(model, z0, enhancer.table, settings,
                                          prediction_type=enhancer.prediction_type)), dim=2)
    assert torch.equal(got, expected)


def test_resume_after_an_exception_equals_the_uninterrupted_run(enhancer, tmp_path):
    frames = video(20)  # 4 windows of 8 overlapping by 4
    full = run_all(enhancer, frames, state_dir=tmp_path / "full")
    assert not (tmp_path / "full").exists()  # removed after a finished run
    assert torch.equal(full, (full * 255).round() / 255)  # with a state folder the frames are k/255

    state, unet_calls = tmp_path / "state", []
    hook = enhancer.unet.register_forward_pre_hook(lambda m, a: unet_calls.append(1))
    try:
        def stop(done, total, preview):
            if done == 12:
                raise Cancelled("stop")

        got = []
        with pytest.raises(Cancelled):
            for part in stream(enhancer, frames, on_step=stop, state_dir=state, save_every=1):
                got.append(part)
        assert RefineStateFolder(state).exists() and got  # some frames were final before the stop
        before = len(unet_calls)
        resumed = torch.cat(list(stream(enhancer, frames, state_dir=state, save_every=1)))
    finally:
        hook.remove()
    assert torch.equal(resumed, full)
    assert len(unet_calls) - before < 4 * 2  # it continued: fewer window runs than a whole run
    assert not state.exists()


def test_a_state_folder_of_another_run_is_refused_saying_what_differs(enhancer, tiny_models, tmp_path):
    frames, state = video(20), tmp_path / "state"

    def stop(done, total, preview):
        if done == 10:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        list(stream(enhancer, frames, on_step=stop, state_dir=state, save_every=1))
    assert RefineStateFolder(state).exists()
    with pytest.raises(InputError, match="another input video"):
        stream(enhancer, video(20, seed=1), state_dir=state)
    with pytest.raises(InputError, match=r"other settings: seed 0 there, 1 now"):
        stream(enhancer, frames, settings=replace(SETTINGS, seed=1), state_dir=state)
    with pytest.raises(InputError, match="other settings: prompt"):
        stream(enhancer, frames, "a blue boat", state_dir=state)
    zeroscope = load_enhancer(tiny_models["zeroscope"])
    with pytest.raises(InputError, match="another enhancer model"):
        stream(zeroscope, frames, state_dir=state)
    with pytest.raises(InputError, match="Brownian tree"):
        stream(enhancer, frames, settings=replace(SETTINGS, sde_noise="brownian"), state_dir=state)


def test_cli_refine_resumes_an_interrupted_run_to_the_same_video(tiny_models, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.mp4"
    write_video(src, video(20), fps=8)
    args = ["refine", "--enhancer", str(tiny_models["ms_vid2vid_xl"]), "--video", str(src), "--prompt", "a car",
            "--chunk", "8", "--overlap", "4", "--steps", "2", "--width", "48", "--height", "32", "--device", "cpu",
            "--save-every", "1"]
    assert main(args + ["--out", str(tmp_path / "full.mp4")]) == 0, capsys.readouterr().err
    assert not (tmp_path / "full.mp4.state").exists()

    real_write, written = video_io.VideoWriter.write, []

    def interrupt_after_two_parts(self, frames):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(frames.shape[0])
        real_write(self, frames)

    monkeypatch.setattr(video_io.VideoWriter, "write", interrupt_after_two_parts)
    out = tmp_path / "out.mp4"
    assert main(args + ["--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"--resume {out}.state" in err and "frames final" in err and not out.exists()
    assert main(args + ["--out", str(out)]) == 2  # a fresh start would silently drop the state: refused
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(video_io.VideoWriter, "write", real_write)
    assert main(args + ["--out", str(out), "--resume", f"{out}.state"]) == 0, capsys.readouterr().err
    assert torch.equal(read_video(out), read_video(tmp_path / "full.mp4"))
    assert not (tmp_path / "out.mp4.state").exists()


def test_file_source_reads_lazily_from_any_frame(tmp_path):
    src = tmp_path / "in.mp4"
    write_video(src, video(10), fps=8)
    source = file_source(src, slice_frames=4)
    assert (source.num_frames, source.height, source.width) == (10, 16, 16) and float(source.fps) == 8
    parts = list(source.read(3))
    assert [p.shape[0] for p in parts] == [4, 3] and parts[0].dtype == torch.uint8
    assert torch.equal(torch.cat(parts).float() / 255, read_video(src)[3:])
