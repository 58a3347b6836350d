"""The pack's VIDEO hand-off against a real ComfyUI's video classes and nodes, in one process.

Usage: python video_checks.py COMFYUI_ROOT   (ComfyUI's python)

Loads the pack as ComfyUI does, then checks that a hand-off VIDEO is a native VideoFromFile that native
SaveVideo saves (frame by frame, as a browser-playable H.264 mp4, rate and sound kept) and
GetVideoComponents decodes; that native VIDEOs (LoadVideo's VideoFromFile, CreateVideo's
VideoFromComponents) are read lazily / without a copy; and that a hand-off file deleted under a cached
VIDEO gives the pack's one-line error and makes the node run again. Prints one JSON object:
{check name: "ok" | "FAIL: ..."}.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

COMFY_ROOT = sys.argv[1]
sys.path.insert(0, COMFY_ROOT)

from st2v_pack_in_comfy import checker, load_pack_like_comfyui  # noqa: E402

from comfy.cli_args import args  # noqa: E402

args.cpu = True

import asyncio  # noqa: E402

import av  # noqa: E402
import torch  # noqa: E402

import folder_paths  # noqa: E402
from comfy_api.input_impl import VideoFromComponents, VideoFromFile  # noqa: E402
from comfy_api.latest._io import Hidden, HiddenHolder  # noqa: E402
from comfy_api.util import VideoComponents  # noqa: E402
from comfy_extras.nodes_video import GetVideoComponents, SaveVideo  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="st2v_video_checks_"))
folder_paths.set_output_directory(str(TMP / "output"))
folder_paths.set_temp_directory(str(TMP / "temp"))

module_name, pack = load_pack_like_comfyui(TMP)
host = sys.modules[module_name + ".nodes.host"]
audio_mod = importlib.import_module(module_name + ".streaming_core.video_audio")
video_io = importlib.import_module(module_name + ".streaming_core.video_io")

results = {}


check = checker(results, limit=6)


def frames(n=10, h=48, w=64):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, h, w, 3, generator=g) * 255).round() / 255


def smooth(n=12, h=48, w=64):
    """Frames an H.264 yuv420p encode keeps close (noise would not survive chroma subsampling)."""
    y = torch.linspace(0, 1, h)[:, None, None]
    x = torch.linspace(0, 1, w)[None, :, None]
    clip = torch.stack([(0.5 + 0.4 * torch.sin(6 * x + 4 * y + 0.3 * i + torch.tensor([0.0, 1.0, 2.0]))).expand(h, w, 3)
                        for i in range(n)])
    return (clip * 255).round() / 255


def tone(seconds, rate=44100):
    t = torch.arange(int(seconds * rate)) / rate
    return (0.3 * torch.sin(2 * math.pi * 440 * t)).expand(2, -1)[None].contiguous()  # (1, 2, samples)


def save_video(video, prefix):
    node = SaveVideo.PREPARE_CLASS_CLONE({}) if hasattr(SaveVideo, "PREPARE_CLASS_CLONE") else SaveVideo
    node.hidden = HiddenHolder.from_dict({Hidden.prompt: {"1": {"class_type": "x"}}})
    out = node.execute(video, prefix, "auto", "auto")
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    return sorted((TMP / "output").rglob(f"{prefix}*.mp4"))[-1]


@check
def handoff_video_is_a_native_video_that_savevideo_saves():
    clip = smooth(12)
    track = audio_mod.AudioTrack(waveform=tone(1.5), sample_rate=44100)
    video = host.write_video_output([clip[:5], clip[5:]], Fraction(8), "Test Node", track)
    assert isinstance(video, VideoFromFile) and host.is_streamed(video)
    assert video.get_dimensions() == (64, 48) and abs(video.get_duration() - 1.5) < 1e-9
    assert Path(video.get_stream_source()).parent == TMP / "temp" / "streamingt2v_video"
    # lossless: the hand-off file holds the frames exactly
    back = video_io.read_video(video.get_stream_source())
    assert torch.equal(back, clip), (back - clip).abs().max()
    saved = save_video(video, "handoff")
    with av.open(str(saved)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p", v.codec_context.pix_fmt
        assert v.average_rate == 8 and v.frames == 12
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
        assert "prompt" in c.metadata, c.metadata  # SaveVideo's metadata reached the file
    decoded = video_io.read_video(saved)
    assert decoded.shape == clip.shape and (decoded - clip).abs().mean() < 0.03  # as the mp4 round trip


@check
def get_video_components_decodes_a_handoff_video():
    clip = frames(6)
    video = host.write_video_output([clip], Fraction(12), "Test Node")
    out = GetVideoComponents.execute(video)
    out = asyncio.run(out) if asyncio.iscoroutine(out) else out
    images, audio, fps = out.result if hasattr(out, "result") else out
    assert torch.equal(images, clip) and fps == 12.0 and audio is None


@check
def native_videos_are_read_lazily_or_without_a_copy():
    clip = frames(20)
    path = TMP / "input.mp4"
    video_io.write_video(path, clip, fps=10)
    source = host.video_source(VideoFromFile(str(path)), "video")
    assert source.batch is None and source.count == 20 and source.fps == 10 and source.path == str(path)
    windows = list(source.windows(8))
    assert [w.shape[0] for w in windows] == [8, 8, 4]
    comp = VideoFromComponents(VideoComponents(images=clip, frame_rate=Fraction(24),
                                               audio={"waveform": tone(1.0), "sample_rate": 44100}))
    source = host.video_source(comp, "video")
    assert source.batch.data_ptr() == clip.data_ptr(), "frames in memory are sliced, not copied"
    assert source.fps == 24 and source.audio is not None and source.audio.sample_rate == 44100
    image = host.video_source(clip, "video", 6)
    assert image.count == 20 and image.fps == 6 and image.batch.data_ptr() == clip.data_ptr()


@check
def a_vanished_handoff_file_is_named_and_its_node_runs_again():
    upscale = pack.NODE_CLASS_MAPPINGS["SDVSRUpscale"]
    video = host.write_video_output([frames(3)], Fraction(8), "Stream-DiffVSR Upscale")
    host.remember_output("SDVSRUpscale", "42", video)
    before = upscale.IS_CHANGED(unique_id="42")
    assert upscale.IS_CHANGED(unique_id="42") == before
    video.path.unlink()
    try:
        save_video(video, "vanished")
        raise AssertionError("SaveVideo saved a video whose file is gone")
    except host.VanishedVideo as exc:
        message = str(exc)
        assert "no longer exists" in message and "Queue the graph again" in message and "\n" not in message
    assert upscale.IS_CHANGED(unique_id="42") != before, "ComfyUI must run the node again"


@check
def a_dropped_handoff_video_deletes_its_file():
    import gc

    video = host.write_video_output([frames(2)], Fraction(8), "Test Node")
    path = video.path
    assert path.is_file()
    del video
    gc.collect()
    assert not path.exists(), "the file lives as long as ComfyUI caches the VIDEO"


print(json.dumps(results))
