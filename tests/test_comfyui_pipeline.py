"""The pack's pipeline nodes inside a real ComfyUI, on make-tiny's models tree.

One harness session posts every shipped API workflow (widgets overridden to tiny sizes and steps in a
copy: 64 px, 2 steps), a test-only graph that upscales a video in two parts chained by the state,
and two broken graphs that ComfyUI's validation must refuse while the server keeps serving. A second
session starts a Chunk Loop far too long to finish, interrupts it (ComfyUI's /interrupt, as Cancel does)
once its first chunk is saved, and queues the same graph again with a shorter length: it must resume
from the saved state instead of starting over, and give the video of a run without resume state.
Outputs are the videos ComfyUI's own SaveVideo / SaveImage nodes wrote, read back and measured.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_harness_util import REPO, comfyui, run_workflows, summarize
from tiny_models_tree import tiny_models_dir

pytestmark = comfyui

API = REPO / "example_workflows" / "api"
SHIPPED = sorted(p.stem for p in API.glob("streamingt2v_*.json"))
START_VIDEO = "st2v_example_start.mp4"  # the LoadVideo widget value of the shipped workflows
START_FRAMES, START_FPS = 12, 8
AUDIO_RATE = 16000  # the start video has a 440 Hz tone: the streamed refine must keep it
LOOP_FRAMES = 24
TINY = {  # class_type -> widget values for a run of seconds on tiny random models
    "ST2VInitialChunk": {"steps": 2, "width": 64, "height": 64},
    "ST2VChunkLoop": {"steps": 2, "frames": LOOP_FRAMES},
    "ST2VCAMExtender": {"steps": 2},
    "ST2VRandomizedBlendRefiner": {"steps": 2, "chunk": 8, "overlap": 4, "width": 48, "height": 32},
    "ImageScale": {"width": 64, "height": 64},
}
PER_WORKFLOW = {  # fewer frames where each one is expensive (x4 upscaling)
    "streamingt2v_long_video_upscale": {"ST2VInitialChunk": {"frames": 8}, "ST2VChunkLoop": {"frames": 9}},
}


def load(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text())


def tiny(graph: dict, overrides: dict | None = None) -> dict:
    graph = copy.deepcopy(graph)
    for node in graph.values():
        for table in (TINY, overrides or {}):
            for key, value in table.get(node["class_type"], {}).items():
                assert key in node["inputs"], (node["class_type"], key)
                node["inputs"][key] = value
    return graph


def split_upscale_graph() -> dict:
    """A video upscaled whole, and in two parts where the second continues from the first's state."""
    first = {"class_type": "ST2VInitialChunk", "inputs": {
        "st2v_model": ["1", 0], "base_model": ["2", 0], "prompt": "a red panda", "negative_prompt": "", "seed": 1,
        "steps": 2, "guidance": 9.0, "width": 64, "height": 64, "frames": 8}}
    return {
        "1": {"class_type": "ST2VLoader", "inputs": {"model": "streaming_t2v.ckpt", "dtype": "auto", "image_encoder": "none"}},
        "2": {"class_type": "ST2VModelScopeLoader", "inputs": {"model": "text-to-video-ms-1.7b", "dtype": "auto"}},
        "3": first,
        "4": {"class_type": "ImageScale", "inputs": {"image": ["3", 0], "upscale_method": "area", "width": 32,
                                                      "height": 32, "crop": "disabled"}},
        "5": {"class_type": "ImageFromBatch", "inputs": {"image": ["4", 0], "batch_index": 0, "length": 6}},
        "6": {"class_type": "SDVSRLoader", "inputs": {"model": "Stream-DiffVSR", "raft": "auto", "dtype": "auto"}},
        "7": {"class_type": "SDVSRUpscale", "inputs": {"sdvsr_model": ["6", 0], "video": ["5", 0], "seed": 3,
                                                       "flow_tile": "auto"}},
        "8": {"class_type": "ImageFromBatch", "inputs": {"image": ["5", 0], "batch_index": 0, "length": 3}},
        "9": {"class_type": "ImageFromBatch", "inputs": {"image": ["5", 0], "batch_index": 3, "length": 3}},
        "10": {"class_type": "SDVSRUpscale", "inputs": {"sdvsr_model": ["6", 0], "video": ["8", 0], "seed": 3,
                                                        "flow_tile": "off"}},
        "11": {"class_type": "SDVSRUpscale", "inputs": {"sdvsr_model": ["6", 0], "video": ["9", 0], "seed": 77,
                                                        "flow_tile": "auto", "state": ["10", 1]}},
        "12": {"class_type": "ImageBatch", "inputs": {"image1": ["10", 0], "image2": ["11", 0]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "split/whole"}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "split/parts"}},
    }


def too_short_graph() -> dict:
    """The streamed refine-only graph on a clip shorter than one chunk: a one-line error, no output."""
    return tiny(load("streamingt2v_refine_only"), {"ST2VRandomizedBlendRefiner": {"chunk": START_FRAMES + 4,
                                                                                  "overlap": 4}})


def broken_graphs() -> dict[str, dict]:
    base = tiny(load("streamingt2v_text_to_long_video"))
    steps = copy.deepcopy(base)
    loop_id = next(k for k, n in steps.items() if n["class_type"] == "ST2VChunkLoop")
    steps[loop_id]["inputs"]["steps"] = 0
    missing = copy.deepcopy(base)
    loader_id = next(k for k, n in missing.items() if n["class_type"] == "ST2VLoader")
    missing[loader_id]["inputs"]["model"] = "no_such_checkpoint.ckpt"
    # NaN passes ComfyUI's min/max validation (every comparison with NaN is false) and an API client or a
    # Primitive can send it: the Refiner must refuse it, not save a black video
    nan = tiny(load("streamingt2v_refine_only"))
    refiner_id = next(k for k, n in nan.items() if n["class_type"] == "ST2VRandomizedBlendRefiner")
    nan[refiner_id]["inputs"]["guidance"] = float("nan")
    return {"bad_steps": steps, "bad_model_file": missing, "nan_guidance": nan}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def start_video(tmp_path_factory) -> Path:
    from streaming_core.video_audio import AudioTrack
    from streaming_core.video_io import VideoWriter

    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(1, 64, 64, 3, generator=g) + torch.linspace(0, 0.4, START_FRAMES).view(-1, 1, 1, 1)).clamp(0, 1)
    seconds = START_FRAMES / START_FPS
    tone = 0.3 * torch.sin(torch.arange(int(AUDIO_RATE * seconds)) * (2 * torch.pi * 440 / AUDIO_RATE))
    path = tmp_path_factory.mktemp("inputs") / START_VIDEO
    with VideoWriter(path, START_FPS, audio=AudioTrack(waveform=tone[None], sample_rate=AUDIO_RATE)) as writer:
        writer.write(frames)
    return path


@pytest.fixture(scope="module")
def session(models, start_video, tmp_path_factory):
    workflows = dict(broken_graphs())  # first: the server must keep serving after refusing them
    workflows.update({name: tiny(load(name), PER_WORKFLOW.get(name)) for name in SHIPPED})
    workflows["split_upscale"] = split_upscale_graph()
    workflows["refine_too_short"] = too_short_graph()
    expect = {"bad_steps": "invalid", "bad_model_file": "invalid", "nan_guidance": "error", "refine_too_short": "error"}
    result = run_workflows(workflows, tmp_path_factory.mktemp("pipeline_harness"), expect=expect,
                           models_dir=models, inputs=(start_video,), timeout=400)
    print(summarize(result))
    return result


def video_of(session, name: str) -> dict:
    """Frames, size and rate of the one video a workflow's SaveVideo wrote."""
    from streaming_core.video_io import read_video, video_info

    files = [f for f in session.workflow(name)["output_files"] if f["path"].endswith(".mp4")]
    assert len(files) >= 1 and all(f["exists"] for f in files), session.workflow(name)["output_files"]
    return {Path(f["path"]).name: (read_video(f["path"]).shape, video_info(f["path"]).get("fps")) for f in files}


def test_pack_imports_and_every_workflow_ends_as_expected(session):
    server = session.report["server"]
    assert server["pack_imported"], server.get("import_traceback")
    assert {"ST2VLoader", "ST2VChunkLoop", "ST2VRandomizedBlendRefiner", "SDVSRUpscale"} <= set(server["pack_nodes"])
    assert session.returncode == 0, summarize(session)
    assert not re.search(r"IMPORT FAILED|Cannot import", session.server_log)


def test_dropdowns_list_the_tiny_tree_through_extra_model_paths(session):
    info = session.object_info
    assert "streaming_t2v.ckpt" in info["ST2VLoader"]["input"]["required"]["model"][0]
    assert info["ST2VModelScopeLoader"]["input"]["required"]["model"][0][0] == "text-to-video-ms-1.7b"
    assert info["ST2VEnhancerLoader"]["input"]["required"]["model"][0] == ["non_ema_0035000.pth", "zeroscope_v2_XL"]
    assert info["SDVSRLoader"]["input"]["required"]["model"][0] == ["Stream-DiffVSR"]
    assert info["ST2VChunkLoop"]["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert info["ST2VChunkLoop"]["category"] == "StreamingT2V"


def test_text_to_long_video_then_refined(session):
    videos = video_of(session, "streamingt2v_text_to_long_video")
    shapes = sorted(shape for shape, _ in videos.values())
    assert shapes == [(LOOP_FRAMES, 32, 32, 3), (LOOP_FRAMES, 64, 64, 3)], videos


def test_extend_any_video_keeps_its_frame_rate(session):
    (shape, fps), = video_of(session, "streamingt2v_extend_any_video").values()
    assert shape == (LOOP_FRAMES, 64, 64, 3) and fps == START_FPS


def test_prompt_per_chunk_extenders(session):
    (shape, _), = video_of(session, "streamingt2v_prompt_per_chunk_extenders").values()
    assert shape == (16 + 4 * 8, 64, 64, 3)


def test_refine_only(session):
    (shape, fps), = video_of(session, "streamingt2v_refine_only").values()
    assert shape == (START_FRAMES, 32, 32, 3) and fps == START_FPS


def test_streamed_refine_keeps_the_sound_and_saves_a_playable_mp4(session):
    """LoadVideo -> refiner (VIDEO in, read lazily) -> VIDEO hand-off -> native SaveVideo: H.264 yuv420p with
    the loaded clip's AAC sound, as long as the video."""
    import av

    (record,) = [f for f in session.workflow("streamingt2v_refine_only")["output_files"] if f["path"].endswith(".mp4")]
    with av.open(record["path"]) as container:
        video, audio = container.streams.video[0], container.streams.audio
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert audio and audio[0].codec_context.name == "aac" and audio[0].codec_context.sample_rate == AUDIO_RATE
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(samples / AUDIO_RATE - START_FRAMES / START_FPS) < 0.1


def test_a_video_shorter_than_one_chunk_is_refused_in_one_line(session):
    error = session.workflow("refine_too_short")["execution_error"]
    assert error["node_type"] == "ST2VRandomizedBlendRefiner", error
    message = error["exception_message"].strip()
    assert "fewer than one chunk" in message and "\n" not in message, message
    assert len(session.outputs("st2v_refined_*.mp4")) == 1, "only the refine-only graph saved a video"
    assert not list(session.output_dir.rglob("*.partial*")), "no half-written file is left"


def test_long_video_upscaled_x4(session):
    (shape, _), = video_of(session, "streamingt2v_long_video_upscale").values()
    assert shape == (9, 256, 256, 3)


def test_upscale_continued_from_a_state_is_the_whole_upscale(session):
    from PIL import Image

    record = session.workflow("split_upscale")
    assert record["status"] == "success"
    whole, parts = session.outputs("split/whole_*.png"), session.outputs("split/parts_*.png")
    assert len(whole) == len(parts) == 6
    for a, b in zip(whole, parts):
        pa, pb = np.asarray(Image.open(a)), np.asarray(Image.open(b))
        assert pa.shape == (128, 128, 3) and np.array_equal(pa, pb)


def test_bad_workflows_are_refused_by_comfyuis_validation(session):
    steps = session.workflow("bad_steps")
    assert steps["status"] == "invalid" and "prompt_outputs_failed_validation" in json.dumps(steps["validation_error"])
    assert "value_smaller_than_min" in json.dumps(steps["node_errors"])
    missing = session.workflow("bad_model_file")
    assert missing["status"] == "invalid" and "value_not_in_list" in json.dumps(missing["node_errors"])
    assert "no_such_checkpoint.ckpt" in json.dumps(missing["node_errors"])


def test_nan_guidance_is_refused_by_the_refiner_not_saved_black(session):
    nan = session.workflow("nan_guidance")
    assert nan["status"] == "error", nan
    error = json.dumps(nan["execution_error"])
    assert "guidance must be a finite number, got nan" in error, error
    assert not [f for f in nan.get("output_files", []) if f.get("exists")]


# -- interrupt and resume --------------------------------------------------------------------------
# The long run is interrupted the moment its first extension chunk has been saved, through ComfyUI's
# /interrupt (the request of the Cancel button; run_workflows(interrupt_when=...)). It used to be the
# harness's own interrupt, which only fires when a workflow outlives --timeout, so the test had to
# guess how long the models, the initial chunk and one extension take: measured on this shared 2-core
# machine, the first state is saved 12 s after the prompt is posted and each chunk takes 3 s more, so the
# old 20 s timeout left 1.6x headroom: a machine twice as busy would have left no state to resume from.
# Now nothing depends on wall-clock time: HARNESS_TIMEOUT_S is only a safety net for a run that never
# saves a state (15x the 12 s; hitting it fails the test as "timeout", not "interrupted").
LONG_FRAMES = 16 + 8 * 400  # 400 chunks, ~20 min here: it must be stopped, it cannot finish first
HARNESS_TIMEOUT_S = 180
RUNS_FOLDER = "streamingt2v_runs"  # where the Chunk Loop keeps its resume state under ComfyUI's output


def long_run(frames: int, run_name: str = "auto", prefix: str = "resumed") -> dict:
    graph = tiny(load("streamingt2v_long_video_upscale"), {"ST2VChunkLoop": {"frames": frames, "run_name": run_name}})
    keep = {k for k, n in graph.items() if n["class_type"] in ("ST2VLoader", "ST2VModelScopeLoader",
                                                                 "ST2VInitialChunk", "ST2VChunkLoop")}
    graph = {k: n for k, n in graph.items() if k in keep}
    loop_id = next(k for k, n in graph.items() if n["class_type"] == "ST2VChunkLoop")
    graph["99"] = {"class_type": "SaveAnimatedWEBP", "inputs": {
        "images": [loop_id, 0], "filename_prefix": prefix, "fps": 8.0, "lossless": True, "quality": 80,
        "method": "fastest"}}
    return graph


def a_state_was_saved(output_dir: Path) -> bool:
    from streaming_core.pipelines.run_folder import STATE_FILE

    return any((output_dir / RUNS_FOLDER).glob(f"*/{STATE_FILE}"))  # written after each chunk, atomically


@pytest.fixture(scope="module")
def interrupted(models, tmp_path_factory):
    workflows = {"long": long_run(LONG_FRAMES),
                 "again_shorter": long_run(LOOP_FRAMES),  # the same graph (same auto run name), fewer frames
                 "no_state": long_run(LOOP_FRAMES, run_name="", prefix="no_state")}  # reference: no resume state
    result = run_workflows(workflows, tmp_path_factory.mktemp("interrupt_harness"),
                           expect={"long": "interrupted"}, models_dir=models, timeout=HARNESS_TIMEOUT_S,
                           interrupt_when=a_state_was_saved)
    print(summarize(result))
    return result


def resume_line(interrupted) -> tuple[int, int]:
    """(frames taken from the saved state, frames of the video) of the resumed run's log line."""
    match = re.search(r"resumed run (auto-\w+) from frame (\d+); the video has (\d+) frames", interrupted.server_log)
    assert match, f"the second run did not resume from a saved state:\n{interrupted.server_log[-3000:]}"
    return int(match.group(2)), int(match.group(3))


def webp_frames(path: Path):
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])


def test_interrupt_stops_a_long_chunk_loop_and_the_server_goes_on(interrupted):
    assert interrupted.returncode == 0, summarize(interrupted)  # the two later runs succeeded
    long = interrupted.workflow("long")
    assert interrupted.interrupted_prompt == long["prompt_id"], "the interrupt was sent while the long run ran"
    assert long["status"] == "interrupted" and long["interrupted_at"]["node_type"] == "ST2VChunkLoop", long
    assert "Processing interrupted" in interrupted.server_log
    saved, _ = resume_line(interrupted)
    assert saved <= LONG_FRAMES // 10, f"stopped after {saved} of {LONG_FRAMES} frames: long before the end"


def test_queueing_the_same_graph_again_resumes_from_the_saved_state(interrupted):
    saved, length = resume_line(interrupted)
    # The interrupt came once the first extension chunk was saved, so the state holds at least LOOP_FRAMES
    # frames: the shorter run is cut from it and runs no denoising step, where starting over runs a chunk.
    assert saved >= LOOP_FRAMES and length == LOOP_FRAMES, (saved, length)
    # what the user is told (on the node, through ComfyUI's progress text, and in the log)
    assert (f"ST2V Chunk Loop: Resumed: the saved run already has {saved} frames, no new ones needed for "
            f"{LOOP_FRAMES}") in interrupted.server_log
    assert interrupted.workflow("again_shorter")["status"] == "success"
    (resumed,), (reference,) = interrupted.outputs("resumed_*.webp"), interrupted.outputs("no_state_*.webp")
    resumed, reference = webp_frames(resumed), webp_frames(reference)
    assert resumed.shape == (LOOP_FRAMES, 64, 64, 3)
    # The same video as a run without resume state. The state stores frames as uint8 (rounded) and
    # SaveAnimatedWEBP truncates 255 * x, so a stored frame may come out one level below a fresh one.
    gap = np.abs(resumed.astype(int) - reference.astype(int))
    assert reference.shape == resumed.shape and gap.max() <= 1, f"{gap.max()} levels apart"


# -- a cancelled refine, queued again ---------------------------------------------------------------
# The streamed refine-only graph with more solver steps (a run of tens of seconds here), interrupted through
# ComfyUI's /interrupt the moment its first resume state is saved, then queued again unchanged: it must
# continue from that state (its log line says so) and save a whole video.
# The reference runs first, uninterrupted, with another value of the refiner's fps widget: fps only
# applies to IMAGE inputs, so its video is the same, but ComfyUI does not take it from its cache.
REFINE_STEPS = 12
REFINE_STATES = "streamingt2v_refine"


def long_refine(prefix: str, fps: float = 8.0) -> dict:
    graph = tiny(load("streamingt2v_refine_only"), {"ST2VRandomizedBlendRefiner": {
        "steps": REFINE_STEPS, "chunk": 4, "overlap": 2, "fps": fps}, "SaveVideo": {"filename_prefix": prefix}})
    return graph


def a_refine_state_was_saved(output_dir: Path) -> bool:
    return any((output_dir / REFINE_STATES).glob("refine-*/state.safetensors"))


@pytest.fixture(scope="module")
def refine_interrupted(models, start_video, tmp_path_factory):
    workflows = {"reference": long_refine("reference", fps=9.0), "stopped": long_refine("stopped"),
                 "again": long_refine("again")}
    holder = {}

    def interrupt_after_reference(output_dir: Path) -> bool:  # the reference must finish first
        holder.setdefault("reference_done", False)
        if not holder["reference_done"]:
            holder["reference_done"] = bool(list(output_dir.rglob("reference_*.mp4")))
            return False
        return a_refine_state_was_saved(output_dir)

    result = run_workflows(workflows, tmp_path_factory.mktemp("refine_interrupt_harness"),
                           expect={"stopped": "interrupted"}, models_dir=models, inputs=(start_video,),
                           timeout=HARNESS_TIMEOUT_S, interrupt_when=interrupt_after_reference)
    print(summarize(result))
    return result


def test_a_cancelled_refine_queued_again_resumes_to_the_same_video(refine_interrupted):
    from streaming_core.video_io import read_video

    result = refine_interrupted
    assert result.returncode == 0, summarize(result)
    stopped = result.workflow("stopped")
    assert result.interrupted_prompt == stopped["prompt_id"] and stopped["status"] == "interrupted", stopped
    assert stopped["interrupted_at"]["node_type"] == "ST2VRandomizedBlendRefiner", stopped
    assert "resuming from the saved state refine-" in result.server_log
    assert not result.outputs("stopped_*.mp4"), "the stopped run saved nothing"
    (reference,), (again,) = result.outputs("reference_*.mp4"), result.outputs("again_*.mp4")
    resumed, whole = read_video(again), read_video(reference)
    assert resumed.shape == whole.shape == (START_FRAMES, 32, 32, 3)
    # Bitwise: both runs refine with the same kernels in the same order (the resumed one continues from the saved
    # state of the same computation), and the two mp4s are encoded from equal frames by the same deterministic
    # encoder. Compared decoded, frame by frame. (Before libx264's MB-tree was turned off, SaveVideo's encode
    # depended on the server's memory and frames 3 and 5 came out up to 21/255 apart: see test_core_video_io.)
    gap = [round(float((a - b).abs().max()) * 255) for a, b in zip(resumed, whole)]
    assert max(gap) == 0, f"levels apart per frame: {gap}"
    assert not list((result.output_dir / REFINE_STATES).glob("refine-*")), "the finished run removed its state"
