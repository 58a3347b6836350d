"""Every pipeline node's function on the tiny models tree, with ComfyUI-shaped inputs, without ComfyUI.

Dropdown names resolve through the host's fallback ($STREAMING_MODELS_DIR = the tree make-tiny
writes), IMAGE inputs are (F, H, W, 3) float tensors, outputs are checked for type, shape, frame
count and the relations that make the nodes useful (a chain of extenders is the Chunk Loop, an
interrupted loop resumes to the same video, an upscale split across two runs is one upscale).
Sizes are 64x64 (the tiny StreamingT2V's smallest) with 2 steps.
"""

from __future__ import annotations

import logging

import pytest
import torch

from pack_loader import load_pack
from streaming_core.errors import Cancelled, CheckpointError, InputError
from streaming_core.models.streamingt2v import StreamingT2V
from streaming_core.models.enhancer import Enhancer
from streaming_core.models.sdvsr.bundle import SDVSRModels
from streaming_core.pipelines.upscale import UpscaleState
from tiny_models_tree import tiny_models_dir

PACK = load_pack()
NODES = PACK.NODE_CLASS_MAPPINGS
host = PACK.nodes.host
STEPS = 2
SIZE = 64
RAFT = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"


def same_frames(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Two code paths computing the same frames. With the suite's one thread they are bit-identical;
    other thread counts or CPUs make oneDNN sum in another order, and 7.5x guidance on random tiny
    models amplifies that to ~3e-5 (measured with 2 threads). A wrong seed, prompt or anchor moves
    frames by ~0.1, far outside this bound."""
    return a.shape == b.shape and (a - b).abs().max().item() <= 1e-3



@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The tiny tree as the models folder, a fresh output folder for run states."""
    models = tiny_models_dir(tmp_path_factory)
    output = tmp_path_factory.mktemp("node_outputs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMING_MODELS_DIR", str(models))
        mp.setenv("STREAMING_OUTPUT_DIR", str(output))
        mp.setenv("STREAMING_TEMP_DIR", str(output / "temp"))
        yield {"models": models, "output": output}


def node(node_id):
    cls = NODES[node_id]
    return getattr(cls(), cls.FUNCTION)


@pytest.fixture(scope="module")
def st2v(env):
    return node("ST2VLoader")(model="streaming_t2v.ckpt", dtype="auto")[0]


@pytest.fixture(scope="module")
def first(env, st2v):
    base = node("ST2VModelScopeLoader")(model="text-to-video-ms-1.7b", dtype="auto")[0]
    return node("ST2VInitialChunk")(st2v_model=st2v, base_model=base, prompt="a red panda", negative_prompt="",
                                    seed=3, steps=STEPS, guidance=9.0, width=SIZE, height=SIZE, frames=16)[0]


def loop_output(st2v, video, frames=32, prompts="a red panda", seed=3, run_name="", keep_state=False, **kw):
    """The Chunk Loop's whole return value: {"ui": {"text": [...]}, "result": (IMAGE, VIDEO)}."""
    return node("ST2VChunkLoop")(st2v_model=st2v, video=video, prompts=prompts, negative_prompt="", frames=frames,
                                 seed=seed, steps=STEPS, text_guidance=7.5, anchor_guidance=7.5, run_name=run_name,
                                 keep_state=keep_state, **kw)


def loop(*args, **kw):
    return loop_output(*args, **kw)["result"][0]


def extender(st2v, video, prompt="a red panda", seed=3, **kw):
    return node("ST2VCAMExtender")(st2v_model=st2v, video=video, prompt=prompt, negative_prompt="", seed=seed,
                                   steps=STEPS, text_guidance=kw.pop("text_guidance", 7.5),
                                   anchor_guidance=kw.pop("anchor_guidance", 7.5), **kw)


@pytest.fixture(scope="module")
def long(st2v, first):
    """The reference: the Chunk Loop from the first chunk to 32 frames, no resume state."""
    return loop(st2v, first)


def runs_dir(env):
    return env["output"] / "streamingt2v_runs"


# -- loaders --------------------------------------------------------------------------------------
def test_dropdowns_offer_the_real_names(env):
    required = lambda node_id: NODES[node_id].INPUT_TYPES()["required"]  # noqa: E731
    assert "streaming_t2v.ckpt" in required("ST2VLoader")["model"][0]
    assert NODES["ST2VLoader"].INPUT_TYPES()["optional"]["image_encoder"][0][0] == "none"
    assert required("ST2VModelScopeLoader")["model"][0][0] == "text-to-video-ms-1.7b"
    assert required("ST2VEnhancerLoader")["model"][0] == ["non_ema_0035000.pth", "zeroscope_v2_XL"]
    assert required("SDVSRLoader")["model"][0] == ["Stream-DiffVSR"]
    assert required("SDVSRLoader")["raft"][0] == ["auto", RAFT]


def test_image_encoder_menu_includes_comfyuis_clip_vision_files(tmp_path, monkeypatch):
    for rel in ("streamingt2v/open_clip_pytorch_model.bin", "clip_vision/CLIP-ViT-H-14.safetensors"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    monkeypatch.setenv("STREAMING_MODELS_DIR", str(tmp_path))
    menu = NODES["ST2VLoader"].INPUT_TYPES()["optional"]["image_encoder"][0]
    assert menu == ["none", "open_clip_pytorch_model.bin", "clip_vision/CLIP-ViT-H-14.safetensors"]
    choices = PACK.nodes.choices
    assert choices.image_encoder_path("none") is None
    assert choices.image_encoder_path(menu[2]) == str(tmp_path / "clip_vision" / "CLIP-ViT-H-14.safetensors")
    assert choices.image_encoder_path(menu[1]) == str(tmp_path / "streamingt2v" / "open_clip_pytorch_model.bin")


def test_streamingt2v_files_in_comfyuis_checkpoints_folder_are_offered(tmp_path, monkeypatch):
    # users of the older StreamingT2V port keep streaming_t2v.ckpt in models/checkpoints/, next to SD checkpoints
    for rel in ("streamingt2v/vidxtend.fp16.safetensors", "checkpoints/streaming_t2v.ckpt",
                "checkpoints/old/StreamingT2V-fp16.safetensors", "checkpoints/v1-5-pruned-emaonly.safetensors"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    monkeypatch.setenv("STREAMING_MODELS_DIR", str(tmp_path))
    menu = NODES["ST2VLoader"].INPUT_TYPES()["required"]["model"][0]
    assert menu == ["vidxtend.fp16.safetensors", "checkpoints/old/StreamingT2V-fp16.safetensors",
                    "checkpoints/streaming_t2v.ckpt"], "an SD checkpoint is not offered"
    choices = PACK.nodes.choices
    assert choices.st2v_model_path(menu[2]) == str(tmp_path / "checkpoints" / "streaming_t2v.ckpt")
    assert choices.st2v_model_path(menu[0]) == str(tmp_path / "streamingt2v" / "vidxtend.fp16.safetensors")
    with pytest.raises(CheckpointError, match=r"'gone\.ckpt' is not in the 'checkpoints' model folders"):
        choices.st2v_model_path("checkpoints/gone.ckpt")


def test_a_missing_clip_vision_pick_names_the_clip_vision_folder(tmp_path, monkeypatch):
    # our own folder may hold a sub-folder called clip_vision: its files are listed as 'clip_vision/<file>' too
    (tmp_path / "streamingt2v" / "clip_vision").mkdir(parents=True)
    (tmp_path / "streamingt2v" / "clip_vision" / "ours.bin").write_bytes(b"x")
    monkeypatch.setenv("STREAMING_MODELS_DIR", str(tmp_path))
    choices = PACK.nodes.choices
    assert choices.image_encoder_path("clip_vision/ours.bin") == str(tmp_path / "streamingt2v" / "clip_vision" /
                                                                     "ours.bin")
    with pytest.raises(CheckpointError, match=r"'gone\.safetensors' is not in the 'clip_vision' model folders") as err:
        choices.image_encoder_path("clip_vision/gone.safetensors")
    assert str(tmp_path / "clip_vision") in str(err.value)


def test_image_encoder_from_another_file_reaches_the_loader(env, st2v):
    # an official checkpoint is one of the files the image encoder may come from (VidXTend needs one)
    other = node("ST2VLoader")(model="streaming_t2v.ckpt", dtype="auto", image_encoder="streaming_t2v.ckpt")[0]
    theirs, ours = host.core_model(other).image_encoder.state_dict(), host.core_model(st2v).image_encoder.state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in ours)
    with pytest.raises(CheckpointError):
        node("ST2VLoader")(model="streaming_t2v.ckpt", dtype="auto", image_encoder="v2-1_512-ema-pruned.ckpt")


def test_loaders_give_models_that_comfyui_can_manage(env, st2v):
    assert isinstance(host.core_model(st2v), StreamingT2V) and host.core_model(st2v).dtype == torch.float32
    base = node("ST2VModelScopeLoader")(model="text-to-video-ms-1.7b", dtype="fp16")[0]
    assert host.core_model(base).dtype == torch.float16, "the dtype widget overrides ComfyUI's choice"
    enhancer = node("ST2VEnhancerLoader")(model="zeroscope_v2_XL", dtype="auto")[0]
    assert isinstance(host.bundle_of(enhancer), Enhancer) and host.bundle_of(enhancer).kind == "diffusers_unet3d"
    sdvsr = node("SDVSRLoader")(model="Stream-DiffVSR", raft=RAFT, dtype="auto")[0]
    bundle = host.load_bundle_for_use(sdvsr)
    assert isinstance(bundle, SDVSRModels)
    parts = set(dict(host.core_model(sdvsr).parts.named_children()))
    assert parts == {"unet", "controlnet", "vae", "raft"}, "every network is under ComfyUI's memory management"


def test_loader_errors_name_the_file_and_what_to_do(env):
    with pytest.raises(CheckpointError, match="not in the 'streamingt2v' model folders"):
        node("ST2VLoader")(model="gone.ckpt", dtype="auto")
    with pytest.raises(CheckpointError, match="stock ModelScope UNet|StreamingT2V"):
        node("ST2VLoader")(model="text-to-video-ms-1.7b/unet/diffusion_pytorch_model.safetensors", dtype="auto")
    with pytest.raises(CheckpointError, match="StreamingT2V checkpoint"):
        node("ST2VModelScopeLoader")(model="streaming_t2v.ckpt", dtype="auto")
    with pytest.raises(CheckpointError, match="Model folder|not in the 'stream_diffvsr'"):
        node("SDVSRLoader")(model="v2", raft="auto", dtype="auto")


# -- generation -------------------------------------------------------------------------------------
def test_initial_chunk_is_an_image_batch(first):
    assert first.shape == (16, SIZE, SIZE, 3) and first.dtype == torch.float32 and first.device.type == "cpu"
    assert 0 <= first.min() and first.max() <= 1 and first.std() > 0.01


def test_a_chain_of_extenders_is_the_chunk_loop(st2v, first, long):
    new, video = extender(st2v, first)
    assert new.shape == (8, SIZE, SIZE, 3) and video.shape == (24, SIZE, SIZE, 3)
    assert torch.equal(video[:16], first) and torch.equal(video[16:], new)
    _, video = extender(st2v, video)
    assert long.shape == (32, SIZE, SIZE, 3) and torch.equal(long[:16], first)
    assert same_frames(video, long), "same seed and prompt: the hand-built loop makes the Chunk Loop's video"


def test_extender_anchor_guidance_of_its_own_takes_eq12(st2v, first, long):
    eq12 = extender(st2v, first, anchor_guidance=2.0)[0]
    assert not torch.allclose(eq12, long[16:24], atol=1e-3), "separate anchor guidance takes the eq. 12 path"


def test_anchor_from_any_image_and_frame(st2v, first, long):
    encode = node("ST2VAnchorEncoder")
    own = encode(st2v_model=st2v, image=first, frame_index=0)[0]
    assert same_frames(loop(st2v, first, frames=24, anchor=own), long[:24]), "frame 0 is the default anchor"
    photo = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(1))
    reference = encode(st2v_model=st2v, image=photo, frame_index=-1)[0]
    new = extender(st2v, first, anchor=reference)[0]
    assert new.shape == (8, SIZE, SIZE, 3) and not torch.allclose(new, long[16:24], atol=1e-3)
    with pytest.raises(InputError, match="outside the 1 given frame"):
        encode(st2v_model=st2v, image=photo, frame_index=1)


def test_chunk_loop_takes_one_prompt_per_line(st2v, first, long):
    video = loop(st2v, first, prompts="a red panda\n\n  a blue whale  \n")
    assert video.shape == long.shape
    assert same_frames(video[:24], long[:24]), "line 1 is the first generated chunk's prompt"
    assert not torch.allclose(video[24:], long[24:], atol=1e-3), "line 2 drives the next chunk"


@pytest.mark.parametrize("kwargs, message", [
    (dict(video=torch.rand(16, 60, 60, 3)), "multiple of 8"),
    (dict(video=torch.rand(4, 64, 64, 3)), "at least 8"),
    (dict(prompts=" \n "), "no prompt given"),
    (dict(frames=16), "already has 16 frames"),
    (dict(run_name="../elsewhere"), "run name"),
    (dict(video=torch.rand(16, 64, 64)), "IMAGE batch"),
])
def test_chunk_loop_bad_input_is_a_clear_error(st2v, first, kwargs, message):
    args = dict(video=first, run_name="")
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        loop(st2v, **args)


# -- resume -------------------------------------------------------------------------------------
def _cancel_after(monkeypatch, steps: int):
    def progress_callback(total, node_id=None):
        def on_step(done, total_now, preview=None):
            if done > steps:
                raise Cancelled("stopped by the test")
        return on_step

    monkeypatch.setattr(host, "progress_callback", progress_callback)


def test_interrupted_loop_resumes_where_it_stopped(env, st2v, first, long, monkeypatch, caplog):
    _cancel_after(monkeypatch, STEPS)  # at the first step of the second chunk
    with pytest.raises(Cancelled):
        loop(st2v, first, run_name="auto")
    (folder,) = runs_dir(env).glob("auto-*")
    assert (folder / "state.safetensors").is_file()
    monkeypatch.undo()
    shown = []
    monkeypatch.setattr(host, "show_text", lambda text, node_id: shown.append((text, node_id)))
    with caplog.at_level(logging.INFO):
        out = loop_output(st2v, first, run_name="auto", unique_id="12")
    video = out["result"][0]
    # the user is told, in the log, on the node (ComfyUI's progress text) and in the node's UI output
    message = f"Resumed from frame 24 (frames 0-23 from the saved run, 8 more to make; state {folder.name})"
    assert message in caplog.text
    assert shown[0] == (message, "12") and out["ui"]["text"] == [message]
    assert video.shape == long.shape and torch.equal(video[:16], first)
    torch.testing.assert_close(video[16:24], long[16:24], rtol=0, atol=1 / 255)  # stored as 8-bit frames
    assert same_frames(video[24:], long[24:]), "the next chunk continues exactly"
    assert not folder.exists(), "a finished run removes its state"


def test_chunk_loop_streams_its_video_and_resumes_into_it(env, st2v, first, long, monkeypatch, caplog):
    """Only the VIDEO output taken: no whole-video IMAGE is kept, the file holds the video of the IMAGE path
    (8-bit), and a cancelled run queued again resumes from its state straight into a new file."""
    from streaming_core.video_io import read_video

    only_video = {"9": {"class_type": "SaveVideo", "inputs": {"video": ["5", 1]}}}
    streamed = lambda **kw: node("ST2VChunkLoop")(  # noqa: E731
        st2v_model=st2v, video=first, prompts="a red panda", negative_prompt="", frames=28, seed=3, steps=STEPS,
        text_guidance=7.5, anchor_guidance=7.5, fps=12.0, unique_id="5", queued_graph=only_video, **kw)
    _cancel_after(monkeypatch, STEPS)
    with pytest.raises(Cancelled):
        streamed(run_name="streamed", keep_state=False)
    assert not list((env["output"] / "temp").rglob("*.partial*")), "a cancelled run leaves no half-written file"
    monkeypatch.undo()
    with caplog.at_level(logging.INFO):
        out = streamed(run_name="streamed", keep_state=False)
    image, video = out["result"]
    assert image is None and "resumed run streamed from frame 24" in caplog.text
    assert out["ui"]["text"] == ["Resumed from frame 24 (frames 0-23 from the saved run, 4 more to make; "
                                 "state streamed)"]
    assert video.count == 28 and video.fps == 12 and video.get_dimensions() == (SIZE, SIZE)
    frames = read_video(video.get_stream_source())
    torch.testing.assert_close(frames, long[:28], rtol=0, atol=1 / 255)


def test_named_run_continues_only_the_same_run(env, st2v, first, long):
    video = loop(st2v, first, frames=24, run_name="panda", keep_state=True)
    assert same_frames(video, long[:24]) and (runs_dir(env) / "panda" / "state.safetensors").is_file()
    with pytest.raises(InputError, match=r"different settings.*seed.*run folder"):
        loop(st2v, first, run_name="panda", seed=4)
    with pytest.raises(InputError, match="started from another video.*fixed"):
        loop(st2v, first.flip(0), run_name="panda")
    longer = loop(st2v, first, frames=32, run_name="panda")  # raising frames continues the kept run
    torch.testing.assert_close(longer[:24], long[:24], rtol=0, atol=1 / 255)
    assert same_frames(longer[24:], long[24:]) and not (runs_dir(env) / "panda").exists()


def test_auto_run_names_follow_the_settings_not_the_length(st2v, first):
    from streaming_core.pipelines.long_video import ExtensionSettings
    from streaming_core.pipelines.resumable_loop import auto_run_name

    model = host.core_model(st2v)
    name = lambda **kw: auto_run_name(model, first, ExtensionSettings(**{"prompts": ["a"], **kw}), None)  # noqa: E731
    assert name() == name() and name().startswith("auto-")
    assert len({name(), name(seed=1), name(prompts=["b"]), name(steps=3)}) == 4
    assert auto_run_name(model, first[:12], ExtensionSettings(["a"]), None) != name()


# -- refiner and upscaler ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_video():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(1, 16, 16, 3, generator=g) + torch.linspace(0, 0.3, 12).view(-1, 1, 1, 1)).clamp(0, 1)


def refine(enhancer, video, mode="randomized", steps=STEPS, chunk=8, overlap=4, **kw):
    return node("ST2VRandomizedBlendRefiner")(
        enhancer=enhancer, video=video, prompt="a red panda", negative_prompt="", mode=mode, chunk=chunk, overlap=overlap,
        strength=0.6, steps=steps, guidance=7.5, seed=0, width=48, height=32, sde_noise="gaussian", **kw)[0]


def test_refiner_enhances_at_the_canvas_size_in_every_mode(env, small_video):
    ms = node("ST2VEnhancerLoader")(model="non_ema_0035000.pth", dtype="auto")[0]
    randomized = refine(ms, small_video)
    assert randomized.shape == (12, 32, 32, 3) and 0 <= randomized.min() and randomized.max() <= 1
    independent = refine(ms, small_video, mode="independent")
    assert independent.shape == randomized.shape and not torch.allclose(independent, randomized, atol=1e-3)
    zeroscope = node("ST2VEnhancerLoader")(model="zeroscope_v2_XL", dtype="auto")[0]
    assert refine(zeroscope, small_video, steps=1).shape == (12, 32, 32, 3)
    with pytest.raises(InputError, match="fewer than one chunk"):
        refine(ms, small_video, chunk=24)


def test_refiner_streams_a_video_and_a_cancelled_run_resumes(env, small_video, monkeypatch, caplog):
    """VIDEO in (read in windows) and out (written as frames are final); Cancel mid-run keeps the state, and
    the same call again continues from it to exactly the video of an uninterrupted run."""
    from streaming_core.video_io import read_video, to_uint8

    ms = node("ST2VEnhancerLoader")(model="non_ema_0035000.pth", dtype="auto")[0]
    clip = host.write_video_output([small_video], 10, "test input")
    only_video = {"9": {"class_type": "SaveVideo", "inputs": {"video": ["6", 1]}}}
    run = lambda: node("ST2VRandomizedBlendRefiner")(  # noqa: E731
        enhancer=ms, video=clip, prompt="a red panda", negative_prompt="", mode="randomized", chunk=4, overlap=2,
        strength=0.6, steps=STEPS, guidance=7.5, seed=0, width=48, height=32, sde_noise="gaussian", unique_id="6",
        queued_graph=only_video)
    reference = refine(ms, to_uint8(small_video).float() / 255, chunk=4, overlap=2)  # what the file holds
    states = env["output"] / "streamingt2v_refine"
    seen = []

    def progress_callback(total, node_id=None):
        def on_step(done, total_now, preview=None):
            seen.append((done, total_now))
            if done > total_now // 2:
                raise Cancelled("stopped by the test")
        return on_step

    monkeypatch.setattr(host, "progress_callback", progress_callback)
    with pytest.raises(Cancelled):
        run()
    assert 0 < seen[-1][0] < seen[-1][1], f"stopped half-way: {seen[-1]}"
    assert list(states.glob("refine-*")), "the cancelled run left its state"
    monkeypatch.undo()
    with caplog.at_level(logging.INFO):
        image, video = run()
    assert "resuming from the saved state refine-" in caplog.text
    assert image is None and video.count == 12 and video.fps == 10 and video.get_dimensions() == (32, 32)
    assert torch.equal(to_uint8(read_video(video.get_stream_source())), to_uint8(reference))
    assert not list(states.glob("refine-*")), "a finished run removes its state"


def test_upscale_split_across_queue_runs_is_one_upscale(env, small_video):
    sdvsr = node("SDVSRLoader")(model="Stream-DiffVSR", raft="auto", dtype="auto")[0]
    upscale = node("SDVSRUpscale")
    whole, state, _ = upscale(sdvsr_model=sdvsr, video=small_video[:6], seed=5, flow_tile="auto")
    assert whole.shape == (6, 64, 64, 3) and isinstance(state, UpscaleState) and state.frames_done == 6
    part1, state1, _ = upscale(sdvsr_model=sdvsr, video=small_video[:4], seed=5, flow_tile="off")
    part2, state2, _ = upscale(sdvsr_model=sdvsr, video=small_video[4:6], seed=99, flow_tile="auto", state=state1)
    assert torch.equal(torch.cat([part1, part2]), whole), "the state carries the video (and its noise) on"
    assert state2.frames_done == 6
    with pytest.raises(InputError, match="state continues a video of 16x16"):
        upscale(sdvsr_model=sdvsr, video=torch.rand(2, 24, 24, 3), seed=0, flow_tile="auto", state=state)


def test_upscale_takes_and_gives_a_streamed_video(env, small_video):
    """VIDEO in (a hand-off file, read lazily) and out (written as frames finish): the frames of the IMAGE
    path exactly, as the hand-off file is lossless; the IMAGE output is only made when something takes it."""
    from streaming_core.video_io import read_video, to_uint8

    sdvsr = node("SDVSRLoader")(model="Stream-DiffVSR", raft="auto", dtype="auto")[0]
    upscale = node("SDVSRUpscale")
    video_in = host.write_video_output(small_video[:5], 12, "test input")
    assert host.is_streamed(video_in) and video_in.get_dimensions() == (16, 16) and video_in.count == 5
    as_image = to_uint8(small_video[:5]).float() / 255  # what the lossless file holds
    expected, _, _ = upscale(sdvsr_model=sdvsr, video=as_image, seed=5, flow_tile="auto")
    graph = {"9": {"class_type": "SaveVideo", "inputs": {"video": ["7", 2]}}}  # only the VIDEO output is taken
    image, state, streamed = upscale(sdvsr_model=sdvsr, video=video_in, seed=5, flow_tile="auto", unique_id="7",
                                     queued_graph=graph)
    assert image is None and state.frames_done == 5
    assert streamed.count == 5 and streamed.fps == 12 and streamed.get_dimensions() == (64, 64)
    back = read_video(streamed.get_stream_source())
    assert torch.equal(to_uint8(back), to_uint8(expected))


def test_a_vanished_video_file_is_named_and_the_node_runs_again(env, small_video):
    sdvsr = node("SDVSRLoader")(model="Stream-DiffVSR", raft="auto", dtype="auto")[0]
    cls = NODES["SDVSRUpscale"]
    _, _, made = node("SDVSRUpscale")(sdvsr_model=sdvsr, video=small_video[:2], seed=5, flow_tile="auto",
                                      unique_id="vanish")
    before = cls.IS_CHANGED(unique_id="vanish")
    assert cls.IS_CHANGED(unique_id="vanish") == before, "unchanged while the file is there: ComfyUI's cache holds"
    made.path.unlink()
    assert cls.IS_CHANGED(unique_id="vanish") != before, "the file is gone: ComfyUI must run the node again"
    with pytest.raises(host.VanishedVideo, match="no longer exists.*Queue the graph again"):
        node("SDVSRUpscale")(sdvsr_model=sdvsr, video=made, seed=5, flow_tile="auto")
