"""The Chunk Loop: bookkeeping, seeds, prompts per chunk, guidance batching, cancel, memory, resume.

The loop runs through the real extension step (``pipelines.extend``), DDIM and guidance; the networks
are the fast stand-ins of ``generate_fakes`` (every input still changes their output), so these tests
take seconds. ``test_generate_models.py`` runs the same loop on the tiny real networks.
"""

from __future__ import annotations

import gc
import math
from dataclasses import replace

import pytest
import torch

from generate_fakes import FakeBaseUNet, FakeStreamingT2V, prompt_code
from streaming_core.errors import Cancelled, InputError
from streaming_core.progress import SD_LATENTS, LatentPreview
from streaming_core.pipelines import extend as extend_module
from streaming_core.pipelines.frames import fit_image
from streaming_core.pipelines.long_video import (ExtensionSettings, InitialChunkSettings, chunk_seed,
                                                 encode_anchor, extend_video, extensions_needed,
                                                 generate_long_video)
from streaming_core.pipelines.resumable_loop import ResumePolicy, TextStart, run_chunk_loop
from streaming_core.pipelines.run_folder import RunFolder, resume_message, resume_point
from streaming_core.sampling import registry

SIZE = 64
INITIAL = InitialChunkSettings(steps=2, height=SIZE, width=SIZE)


def video(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(seed))


def settings(**kw) -> ExtensionSettings:
    kw.setdefault("prompts", ["a fox"])
    kw.setdefault("steps", 2)
    kw.setdefault("seed", 7)
    return ExtensionSettings(**kw)


@pytest.fixture
def spy_extend(monkeypatch):
    """Record the CAM frames and generator of every call of the real extension step."""
    calls = []
    real = extend_module.extend_chunk

    def spy(model, cam_frames, cond, settings, **kw):
        calls.append({"cam_frames": cam_frames.clone(), "text": cond.text.clone(), "anchor": cond.anchor.clone()})
        return real(model, cam_frames, cond, settings, **kw)

    monkeypatch.setattr(extend_module, "extend_chunk", spy)
    return calls


# -- bookkeeping -----------------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [16, 17, 24, 40, 41])
def test_generate_lengths_and_conditioning(frames, spy_extend):
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    chunks = []
    out = generate_long_video(model, base, frames, settings(), INITIAL, on_chunk=chunks.append)
    assert out.shape == (frames, SIZE, SIZE, 3)
    n = math.ceil((frames - 16) / 8)
    assert len(spy_extend) == n == extensions_needed(16, frames)
    # every chunk is conditioned on the last 8 frames of the video so far (signed pixels)
    full = torch.cat([c.frames for c in chunks])
    for k, call in enumerate(spy_extend):
        so_far = full[: 16 + 8 * k]
        expected = so_far[-8:].permute(0, 3, 1, 2) * 2 - 1
        torch.testing.assert_close(call["cam_frames"][0], expected, rtol=0, atol=1e-6)
    assert [c.first_frame for c in chunks] == [0] + [16 + 8 * k for k in range(n)]
    assert sum(c.keep for c in chunks) == frames
    assert torch.equal(full[:frames], out)


@pytest.mark.parametrize("start,frames", [(8, 9), (11, 40), (16, 41), (30, 31)])
def test_extend_any_video(start, frames, spy_extend):
    model = FakeStreamingT2V()
    given = video(start, seed=start)
    out = extend_video(model, given, frames, settings())
    assert out.shape[0] == frames
    assert torch.equal(out[:start], given)
    assert len(spy_extend) == math.ceil((frames - start) / 8)
    torch.testing.assert_close(spy_extend[0]["cam_frames"][0], given[-8:].permute(0, 3, 1, 2) * 2 - 1)


def test_default_anchor_is_frame_zero_and_any_image_works(spy_extend):
    model = FakeStreamingT2V()
    given = video(16)
    a = extend_video(model, given, 24, settings())
    b = extend_video(model, given, 24, settings(), anchor=given[0])
    assert torch.equal(a, b)  # explicit frame 0 == the default anchor
    image = torch.rand(100, 40, 3)
    c = extend_video(model, given, 24, settings(), anchor=image)  # any size
    assert not torch.equal(a[16:], c[16:])
    assert not torch.equal(spy_extend[0]["anchor"], spy_extend[2]["anchor"])
    # an anchor encoded once (the Anchor APM Encoder node's output) is the same as the image
    encoded = encode_anchor(model, image, SIZE, SIZE)
    assert encoded.frames.shape == (1, SIZE, SIZE, 3)
    assert torch.equal(extend_video(model, given, 24, settings(), anchor=encoded), c)


def test_anchor_rule_centre_crops_to_aspect_then_resizes():
    wide = torch.zeros(40, 120, 3)
    wide[:, 40:80] = 1.0  # a white centre square between black sides
    fitted = fit_image(wide, 64, 64)
    assert fitted.shape == (1, 64, 64, 3)
    assert fitted.min() > 0.99  # the centre square fills the whole square frame
    tall = fit_image(torch.rand(3, 90, 30, 3), 32, 64)
    assert tall.shape == (3, 32, 64, 3) and 0 <= tall.min() and tall.max() <= 1


# -- seeds ---------------------------------------------------------------------------------------------
def test_same_seed_same_frames_other_seed_other_frames():
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    a = generate_long_video(model, base, 32, settings(seed=1), INITIAL)
    b = generate_long_video(model, base, 32, settings(seed=1), INITIAL)
    c = generate_long_video(model, base, 32, settings(seed=2), INITIAL)
    assert torch.equal(a, b)
    assert not torch.equal(a[:16], c[:16]) and not torch.equal(a[16:], c[16:])
    # the seed reaches the extension stage on its own (the official code ignores it there)
    given = video(16)
    d = extend_video(model, given, 24, settings(seed=1))
    e = extend_video(model, given, 24, settings(seed=2))
    assert (d[16:] - e[16:]).abs().max() > 1e-3


def test_chunk_noise_depends_only_on_seed_and_index():
    model = FakeStreamingT2V()
    given = video(16)
    long = extend_video(model, given, 48, settings())
    short = extend_video(model, given, 32, settings())
    assert torch.equal(long[:32], short)  # a longer run starts with the shorter one
    assert len({chunk_seed(5, k) for k in range(100)}) == 100 and chunk_seed(5, 0) == 5


def test_official_rng_is_one_generator_drawn_in_turn():
    model = FakeStreamingT2V()
    given = video(16)
    s = settings(rng="official", seed=33)
    out = extend_video(model, given, 32, s)
    # by hand: the extension step twice, one CPU generator seeded 33, as the official loop does
    gen = torch.Generator().manual_seed(33)
    cond = extend_module.ExtendConditioning(
        text=model.encode_prompts(["a fox"]), uncond_text=model.encode_prompts([""]),
        anchor=model.anchor_tokens((given[:1].permute(0, 3, 1, 2) * 2 - 1)[None]),
        uncond_anchor=model.grey_anchor_tokens(batch=1))
    frames = given
    for _ in range(2):
        cam = (frames[-8:].permute(0, 3, 1, 2) * 2 - 1)[None]
        lat = extend_module.extend_chunk(model, cam, cond, ExtensionSettings(steps=2), generator=gen)
        new = extend_module.decode_chunk(model, lat)[0, 8:].permute(0, 2, 3, 1)
        frames = torch.cat([frames, new])
    torch.testing.assert_close(out, frames, rtol=0, atol=0)
    assert not torch.equal(out, extend_video(model, given, 32, settings(seed=33)))


# -- prompts ---------------------------------------------------------------------------------------
def _cond_text_codes(calls, per_chunk: int):
    codes = [c["text_code"][-1] for c in calls]  # the cond half is the last of the batch
    return [codes[i] for i in range(0, len(codes), per_chunk)]


def test_prompt_per_chunk_generate():
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    prompts = ["first", "second", "third"]
    generate_long_video(model, base, 48, settings(prompts=prompts), INITIAL)  # 1 initial + 4 extensions
    assert _cond_text_codes(base.calls, 2) == pytest.approx([prompt_code("first")], rel=1e-5)
    expected = [prompt_code(p) for p in ("second", "third", "third", "third")]  # the last one repeats
    assert _cond_text_codes(model.predict_calls, 2) == pytest.approx(expected, rel=1e-5)
    uncond = {round(c["text_code"][0], 5) for c in model.predict_calls}
    assert uncond == {round(prompt_code(""), 5)}


def test_prompt_per_chunk_extend_starts_with_the_first_prompt():
    model = FakeStreamingT2V()
    extend_video(model, video(16), 40, settings(prompts=["x", "y"], negative_prompt="blurry"))
    expected = [prompt_code(p) for p in ("x", "y", "y")]
    assert _cond_text_codes(model.predict_calls, 2) == pytest.approx(expected, rel=1e-5)
    assert {round(c["text_code"][0], 5) for c in model.predict_calls} == {round(prompt_code("blurry"), 5)}


# -- guidance ----------------------------------------------------------------------------------------
def test_guidance_batching():
    given = video(16)
    joint = FakeStreamingT2V()
    a = extend_video(joint, given, 24, settings(guidance=7.5))
    assert [c["batch"] for c in joint.predict_calls] == [2, 2]
    same = FakeStreamingT2V()
    b = extend_video(same, given, 24, settings(guidance=7.5, anchor_guidance=7.5))
    assert [c["batch"] for c in same.predict_calls] == [2, 2]
    assert torch.equal(a, b)
    eq12 = FakeStreamingT2V()
    c = extend_video(eq12, given, 24, settings(guidance=7.5, anchor_guidance=2.0))
    assert [c_["batch"] for c_ in eq12.predict_calls] == [3, 3]
    # the three passes are (empty, grey), (empty, anchor), (prompt, anchor)
    first = eq12.predict_calls[0]
    assert first["text_code"][0] == pytest.approx(first["text_code"][1])
    assert first["anchor"][1] == pytest.approx(first["anchor"][2])
    assert first["anchor"][0] != pytest.approx(first["anchor"][1])
    assert (a[16:] - c[16:]).abs().max() > 1e-3
    # eq. 12 through its 3-pass batch, at (almost) equal scales, gives the joint 2-pass result
    near = FakeStreamingT2V()
    d = extend_video(near, given, 24, settings(guidance=7.5, anchor_guidance=7.5 + 1e-6))
    assert [c_["batch"] for c_ in near.predict_calls] == [3, 3]  # really the 3-pass path, not the joint one
    torch.testing.assert_close(d, a, rtol=0, atol=1e-4)


# -- progress and cancel -----------------------------------------------------------------------------
@pytest.mark.parametrize("stop_at", [1, 2, 3, 5])
def test_cancel_stops_within_one_step(stop_at):
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    seen = []

    def on_step(done, total, preview):
        seen.append((done, total))
        if done == stop_at:
            raise Cancelled()

    with pytest.raises(Cancelled):
        generate_long_video(model, base, 40, settings(steps=2), InitialChunkSettings(steps=2, height=SIZE, width=SIZE),
                            on_step=on_step)
    assert len(base.calls) + len(model.predict_calls) == stop_at  # exactly k denoising steps ran
    assert seen == [(k, 2 + 3 * 2) for k in range(1, stop_at + 1)]  # total = all steps of the run


def test_progress_previews_every_step_and_frames_at_chunk_ends():
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    previews = []
    generate_long_video(model, base, 32, settings(steps=3), InitialChunkSettings(steps=2, height=SIZE, width=SIZE),
                        on_step=lambda d, t, p: previews.append((d, p)))
    assert [d for d, _ in previews] == list(range(1, 2 + 2 * 3 + 1))
    # decoded frames at each chunk's last step, the x0 latent estimate at every other step (during a chunk)
    assert [d for d, p in previews if isinstance(p, torch.Tensor)] == [2, 5, 8]
    assert all(p.shape[1:] == (SIZE, SIZE, 3) and p.shape[0] <= 8 for _, p in previews if isinstance(p, torch.Tensor))
    latents = [(d, p) for d, p in previews if isinstance(p, LatentPreview)]
    assert [d for d, _ in latents] == [1, 3, 4, 6, 7]
    for _, p in latents:  # one 16-frame chunk in SD latents, 1/8 of the frame size
        assert p.family == SD_LATENTS and p.latents.shape == (1, 4, 16, SIZE // 8, SIZE // 8)
        assert p.newest_frame().shape == (1, 4, SIZE // 8, SIZE // 8)
        assert torch.equal(p.newest_frame()[0], p.latents[0, :, -1])


# -- memory -----------------------------------------------------------------------------------------
def _live_cpu_bytes() -> int:
    """Bytes of all distinct CPU tensor storages alive now (the compute device here is the CPU)."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor) and obj.device.type == "cpu":
            s = obj.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


@pytest.mark.parametrize("output_device,chunks", [("meta", 50), ("cpu", 10)])
def test_device_memory_flat_over_50_chunks(output_device, chunks):
    """With finished frames sent to another device ("meta" stands in for the host), the tensors left
    on the compute device (the CPU here) must not grow with the number of chunks. The control run
    keeps the frames on the compute device and must show the growth, so the probe can see it."""
    model = FakeStreamingT2V()
    probes = {2, chunks // 2, chunks - 1}
    live = []
    extend_video(model, video(16), 16 + chunks * 8, settings(steps=1), output_device=output_device,
                 on_chunk=lambda done: live.append(_live_cpu_bytes()) if done.index in probes else None)
    chunk_bytes = 8 * SIZE * SIZE * 3 * 4
    assert len(live) == 3
    growth = live[-1] - live[0]
    if output_device == "cpu":
        assert growth >= (chunks - 3) * chunk_bytes * 0.9
    else:
        assert abs(growth) < chunk_bytes / 8, f"compute-device memory grew by {growth} bytes over {chunks - 3} chunks"


# -- resume ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rng,exact", [("per_chunk", True), ("official", False)])
def test_resume_equals_uninterrupted(tmp_path, rng, exact):
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    s = settings(rng=rng, prompts=["a", "b", "c"])
    full = generate_long_video(model, base, 50, s, INITIAL)

    folder = RunFolder(tmp_path / "run.state", exact_frames=exact)
    stop = {"at": 2 + 2 * 2 + 1}  # the first step of the third extension

    def on_step(done, total, preview):
        if done == stop["at"]:
            raise Cancelled()

    with pytest.raises(Cancelled):
        generate_long_video(model, base, 50, s, INITIAL, on_step=on_step, on_chunk=folder.record)
    state, frames = resume_point(folder.path)
    assert (state.chunks_done, state.frames_done, state.steps_done) == (3, 32, 6)
    steps = []
    resumed = generate_long_video(model, base, 50, s, INITIAL, resume=state, previous_frames=frames,
                                  on_step=lambda d, t, p: steps.append((d, t)))
    assert steps[0] == (7, 2 + 5 * 2) and steps[-1] == (12, 12)
    if exact:
        assert torch.equal(resumed, full)
    else:  # frames stored as uint8: the old frames are the video file's; the new ones are exact
        assert torch.equal(resumed[32:], full[32:])
        assert torch.equal((resumed * 255).round(), (full * 255).round())


def test_resume_streaming_and_longer_target(tmp_path):
    model = FakeStreamingT2V()
    given = video(12)
    s = settings(seed=3)
    full = extend_video(model, given, 60, s)
    folder = RunFolder(tmp_path / "st", exact_frames=True)
    folder.record_start(given)
    extend_video(model, given, 30, s, on_chunk=folder.record)  # a shorter run, finished
    state = folder.load_state()
    assert state.frames_done == 36  # the last chunk is kept whole for later
    new = []
    out = extend_video(model, None, 60, s, resume=state, keep_frames=False,
                       on_chunk=lambda d: new.append(d.frames[: d.keep]))
    assert out is None
    stored = folder.load_frames(state)
    assert torch.equal(torch.cat([stored] + new)[:60], full)


def test_resume_with_other_settings_or_model_is_refused(tmp_path):
    model = FakeStreamingT2V()
    states = []
    extend_video(model, video(16), 24, settings(seed=1), on_chunk=lambda d: states.append(d.state))
    state = states[-1]
    prev = torch.zeros(24, SIZE, SIZE, 3)
    with pytest.raises(InputError, match="seed"):
        extend_video(model, prev, 40, settings(seed=2), resume=state)
    with pytest.raises(InputError, match="model"):
        extend_video(FakeStreamingT2V(seed=1), prev, 40, settings(seed=1), resume=state)
    with pytest.raises(InputError, match="prompts"):
        extend_video(model, prev, 40, settings(seed=1, prompts=["other"]), resume=state)
    with pytest.raises(InputError, match="anchor"):
        extend_video(model, prev, 40, settings(seed=1), resume=state, anchor=torch.rand(8, 8, 3))
    with pytest.raises(InputError, match="24 frames"):
        extend_video(model, prev[:20], 40, settings(seed=1), resume=state)
    with pytest.raises(InputError, match="no resume state"):
        RunFolder(tmp_path / "nothing").load_state()
    # only the target length may change
    assert extend_video(model, prev, 40, settings(seed=1), resume=state).shape[0] == 40


# -- bad input ----------------------------------------------------------------------------------------
def test_bad_input_gets_clear_errors():
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    with pytest.raises(InputError, match="at least 16"):
        generate_long_video(model, base, 15, settings(), INITIAL)
    with pytest.raises(InputError, match="multiple of 8"):
        InitialChunkSettings(height=60)
    with pytest.raises(InputError, match="no prompt"):
        settings(prompts=[])
    with pytest.raises(InputError, match="steps"):
        settings(steps=0)
    with pytest.raises(InputError, match="rng"):
        settings(rng="cuda")
    with pytest.raises(InputError, match="eta"):
        settings(eta=-1)
    with pytest.raises(InputError, match="finite"):
        settings(guidance=float("nan"))
    for bad in (torch.rand(64, 64), torch.rand(2, 64, 64, 4), torch.rand(3, 64)):
        with pytest.raises(InputError, match="anchor"):
            extend_video(model, video(16), 24, settings(), anchor=bad)
    with pytest.raises(InputError, match="at least 8"):
        extend_video(model, video(7), 24, settings())
    with pytest.raises(InputError, match="already has 16"):
        extend_video(model, video(16), 16, settings())
    with pytest.raises(InputError, match="multiple of 8"):
        extend_video(model, torch.rand(8, 60, 64, 3), 24, settings())
    mismatched = FakeBaseUNet()
    mismatched.config = type("Config", (), {"in_channels": 4, "cross_attention_dim": 1024, "cam_mergers": False,
                                            "apm": False})()
    with pytest.raises(InputError, match="do not belong together"):
        generate_long_video(model, mismatched, 24, settings(), INITIAL)
    assert not model.predict_calls and not base.calls and not mismatched.calls  # nothing ran before the errors


def test_settings_refuse_bad_sampling_values_in_one_line():
    for make, match in ((lambda: settings(sampler="euler"), "unknown sampler 'euler'"),
                        (lambda: settings(frames=0), "frames must be a whole number"),
                        (lambda: settings(frames=16.0), "frames must be a whole number"),
                        (lambda: InitialChunkSettings(sampler="euler"), "unknown sampler 'euler'"),
                        (lambda: InitialChunkSettings(frames=0), "frames must be a whole number"),
                        (lambda: InitialChunkSettings(eta=-0.5), "eta must be 0 or more")):
        with pytest.raises(InputError, match=match) as err:
            make()
        assert "\n" not in str(err.value)


def test_the_loop_needs_the_official_16_frame_chunks():
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    with pytest.raises(InputError, match="16-frame chunks, the settings ask for 24"):
        extend_video(model, video(16), 24, settings(frames=24))
    with pytest.raises(InputError, match="16-frame chunks, the settings ask for 8"):
        generate_long_video(model, base, 24, settings(), replace(INITIAL, frames=8))
    assert not model.predict_calls and not base.calls


def test_the_loop_samples_with_the_settings_sampler(monkeypatch):
    ddim = registry.get_sampler("ddim")
    monkeypatch.setattr(registry, "SAMPLERS", dict(registry.SAMPLERS))
    seen = []

    def spy(model, x, schedule, steps, **kw):
        seen.append(steps)
        return ddim(model, x, schedule, steps, **kw)

    registry.register_sampler("spy", spy)
    given = video(16)
    out = extend_video(FakeStreamingT2V(), given, 32, settings(sampler="spy"))
    assert seen == [2, 2]  # one call per chunk, with the settings' steps
    assert torch.equal(out, extend_video(FakeStreamingT2V(), given, 32, settings()))  # the same DDIM underneath


def test_fields_added_after_version_1_keep_earlier_resume_states_valid():
    """Resume states and "auto" run names made before ``sampler``/``frames``/``eta`` were settings recorded
    exactly these keys (resume-state version 1); a new field is recorded once it is changed."""
    assert list(settings().as_dict()) == ["prompts", "negative_prompt", "seed", "steps", "eta", "guidance",
                                          "anchor_guidance", "rng"]
    assert list(INITIAL.as_dict()) == ["steps", "guidance", "sampler", "height", "width"]
    assert settings(sampler="dpmpp_2m").as_dict()["sampler"] == "dpmpp_2m"
    assert replace(INITIAL, eta=0.5).as_dict()["eta"] == 0.5


# -- the one resume driver (the CLI's generate and the Chunk Loop node) ----------------------------------
def _stop_at(step: int):
    def on_step(done, total, preview=None):
        if done == step:
            raise Cancelled()
    return on_step


def test_the_driver_resumes_a_text_start_run_to_the_uninterrupted_video(tmp_path):
    model, base = FakeStreamingT2V(), FakeBaseUNet()
    start, s = TextStart(base, INITIAL), settings(prompts=["a fox", "a cat", "a dog"])
    full = run_chunk_loop(model, start, 40, s, None).video
    folder, streamed = RunFolder(tmp_path / "run", exact_frames=True), []
    with pytest.raises(Cancelled):  # in the second extension: the first chunk and one extension are saved
        run_chunk_loop(model, start, 40, s, folder, on_step=_stop_at(INITIAL.steps + 2 * s.steps - 1),
                       on_frames=streamed.append)
    assert folder.load_state().frames_done == 24 and torch.cat(streamed).shape[0] == 24
    told, rest = [], []
    # resuming needs no base UNet (the first chunk exists) and no start video (the stored one is the start)
    result = run_chunk_loop(model, TextStart(None, INITIAL), 40, s, folder,
                            ResumePolicy(required=True, on_resume=told.append), on_frames=rest.append)
    assert result.resumed_from == 24 and told == [resume_message(24, 40, folder.path)]
    assert torch.equal(result.video, full) and torch.equal(torch.cat(rest), full)
    assert not folder.path.exists()  # finished: removed (keep_state is off)


def test_the_driver_refuses_a_missing_required_state_and_leaves_no_half_state(tmp_path):
    model = FakeStreamingT2V()
    missing = RunFolder(tmp_path / "missing")
    with pytest.raises(InputError, match="no resume state"):
        run_chunk_loop(model, video(16), 40, settings(), missing, ResumePolicy(required=True))
    assert not missing.path.exists()
    stopped = RunFolder(tmp_path / "stopped")
    with pytest.raises(Cancelled):  # before the first chunk's state: chunk_000000 alone would be no resume point
        run_chunk_loop(model, video(16), 40, settings(), stopped, on_step=_stop_at(1))
    assert not stopped.path.exists()
    refused = RunFolder(tmp_path / "refused")
    run_chunk_loop(model, video(16), 24, settings(seed=1), refused, ResumePolicy(keep_state=True))
    with pytest.raises(InputError, match=r"seed.*\(run folder .*refused: try again\)"):
        run_chunk_loop(model, video(16), 40, settings(seed=2), refused, ResumePolicy(refusal_hint="try again"))
