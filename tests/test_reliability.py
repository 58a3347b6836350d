"""The fault battery of issue 12, replayed so it never regresses: malicious and broken files through
every loader, absurd numbers at every command (refused before any model loads, with one line that
names the problem and the fix), outputs that cannot be written or would overwrite an input, leftovers,
and a run killed with SIGKILL that resumes to the same frames.

Most commands run in-process through ``streaming_core.cli.main``. The bad-number cases point the
model options at paths that do not exist: a refusal that names the number (not the missing model)
proves the check ran before any model was looked at.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pack_loader import load_pack
from streaming_core import validation
from streaming_core.checkpoints import files
from streaming_core.checkpoints.inspect import inspect_path
from streaming_core.cli import main
from streaming_core.errors import CheckpointError, InputError
from streaming_core.video_io import read_video, write_video

REPO = Path(__file__).resolve().parents[1]
NO_MODEL = "/nonexistent/model"
FAST = ["--steps", "2", "--base-steps", "2"]


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def refused(argv, capsys, *needles) -> str:
    """``argv`` exits 2 with one ``error:`` line holding every needle and no traceback."""
    rc, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A short 64x64 video (8 fps, 20 frames): big enough for the demo models, tiny on disk."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = torch.linspace(0, 1, 20)[:, None, None, None].expand(20, 64, 64, 3)
    write_video(path, frames, fps=8)
    return path


# -- bad numbers -------------------------------------------------------------------------------------
SEED_RANGE = f"from 0 to {2**63 - 1}"


def refine_args(clip, out, *extra):
    return ["refine", "--enhancer", NO_MODEL, "--video", clip, "--prompt", "a", "--out", out, *extra]


def upscale_args(clip, out, *extra):
    return ["upscale", "--sdvsr", NO_MODEL, "--video", clip, "--out", out, *extra]


def generate_args(out, *extra):
    return ["generate", "--prompt", "a", "--st2v", NO_MODEL, "--base", NO_MODEL, "--out", out, *extra]


@pytest.mark.parametrize("extra, needles", [
    (["--guidance", "nan"], ["guidance must be a finite number, got nan"]),
    (["--guidance", "inf"], ["guidance must be a finite number, got inf"]),
    (["--guidance", "-1"], ["guidance must be a number at least 0.0"]),
    (["--seed", "-1"], ["seed must be a whole number " + SEED_RANGE]),
    (["--seed", str(2**64)], ["seed must be a whole number " + SEED_RANGE]),
    (["--sde-seed", "-1"], ["SDE seed must be"]),
    (["--fps", "nan"], ["fps must be a finite number"]),
    (["--fps", "0"], ["fps must be a number from 0.1 to 1000"]),
    (["--fps", "-8"], ["fps must be"]),
    (["--steps", "0"], ["steps must be a whole number from 1 to 1000"]),
    (["--strength", "nan"], ["strength must be a finite number"]),
    (["--strength", "0"], ["strength must be a number above 0.0 and at most 1.0"]),
    (["--width", "65536", "--height", "65536"], ["65536x65536", "ceiling of 16,777,216 pixels", "GB"]),
])
def test_refine_refuses_bad_numbers_before_loading(clip, tmp_path, capsys, extra, needles):
    out = tmp_path / "out.mp4"
    refused(refine_args(clip, out, *extra), capsys, *needles)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_refine_canvas_refusal_says_what_it_would_need(clip, tmp_path, capsys):
    line = refused(refine_args(clip, tmp_path / "o.mp4", "--width", "65536", "--height", "65536"), capsys)
    # 24 frames (one chunk) x 65536^2 pixels x 3 channels x 4 bytes
    assert f"{24 * 65536**2 * 12 / 1e9:,.1f} GB" in line


@pytest.mark.parametrize("extra, needles", [
    (["--seed", "-1"], ["seed must be a whole number " + SEED_RANGE]),
    (["--seed", str(2**64)], ["seed must be"]),
    (["--tile", "-5"], ["positive tile side in pixels, got -5"]),
    (["--crf", "100"], ["crf must be a whole number from 0 to 51", "libx264"]),
    (["--crf", "-1"], ["crf must be"]),
    (["--steps", "0"], ["steps must be a whole number from 1 to 1000"]),
    (["--tile-overlap", "-1"], ["flow tile overlap must be"]),
    (["--frames", "0"], ["frames must be a whole number at least 1"]),
    (["--start", "-3"], ["start must be a whole number at least 0"]),
])
def test_upscale_refuses_bad_numbers_before_loading(clip, tmp_path, capsys, extra, needles):
    out = tmp_path / "up.mp4"
    refused(upscale_args(clip, out, *extra), capsys, *needles)
    assert not out.exists()


@pytest.mark.parametrize("extra, needles", [
    (["--seed", "-1"], ["seed must be a whole number " + SEED_RANGE]),
    (["--seed", str(2**64)], ["seed must be"]),
    (["--fps", "nan"], ["fps must be a finite number"]),
    (["--fps", "0"], ["fps must be"]),
    (["--frames", "0"], ["frames must be a whole number at least 16"]),
    (["--frames", "1000000000"], ["1,000,000,000 is above", "ceiling of 10,000 frames", "--init-video"]),
    (["--steps", "0"], ["steps must be"]),
    (["--base-steps", "0"], ["steps must be"]),
    (["--guidance", "nan"], ["guidance must be a finite number"]),
    (["--base-guidance", "inf"], ["first-chunk guidance must be a finite number"]),
    (["--eta", "nan"], ["eta must be a finite number"]),
    (["--width", "100"], ["width must be a positive multiple of 8"]),
    (["--width", "16384", "--height", "16384"], ["16384x16384", "ceiling", f"{16 * 16384**2 * 12 / 1e9:,.1f} GB"]),
])
def test_generate_refuses_bad_numbers_before_loading(tmp_path, capsys, extra, needles):
    out = tmp_path / "g.mp4"
    refused(generate_args(out, *extra), capsys, *needles)
    assert list(tmp_path.iterdir()) == []


def test_the_real_entry_point_exits_2_with_one_line(clip, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "streaming_core", *map(str, refine_args(clip, tmp_path / "o.mp4")),
                           "--guidance", "nan"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: guidance must be a finite number, got nan (the official scales are 7.5 to 9)."], proc.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_demo_fallback_refuses_too(tmp_path, capsys):
    # no weights anywhere: generate runs the demo, and still refuses an absurd length first
    refused(["generate", "--prompt", "a", "--models-dir", tmp_path / "none", "--out", tmp_path / "d.mp4",
             "--frames", "1000000000"], capsys, "ceiling of 10,000 frames")


def test_python_api_refuses_the_same_values():
    from streaming_core.pipelines.long_video import ExtensionSettings
    from streaming_core.pipelines.refine import RefineSettings
    from streaming_core.pipelines.upscale import UpscaleSettings
    from streaming_core.video_io import VideoWriter

    # the settings objects refuse bad values when made, before any model or frame is touched
    with pytest.raises(InputError, match="guidance must be a finite number, got nan"):
        RefineSettings(guidance=float("nan"))
    with pytest.raises(InputError, match="seed must be a whole number " + SEED_RANGE):
        RefineSettings(seed=-1)
    with pytest.raises(InputError, match="seed must be a whole number " + SEED_RANGE):
        UpscaleSettings(seed=2**64)
    with pytest.raises(InputError, match="positive tile side"):
        UpscaleSettings(flow_tile=-5)
    with pytest.raises(InputError, match="seed must be a whole number " + SEED_RANGE):
        ExtensionSettings(["a"], seed=2**64)
    with pytest.raises(InputError, match="fps must be"):
        VideoWriter("x.mp4", fps=0)
    with pytest.raises(InputError, match="crf must be"):
        VideoWriter("x.mp4", crf=100)


def test_validation_rules():
    assert validation.seed(0) == 0 and validation.seed(validation.MAX_SEED) == validation.MAX_SEED
    assert validation.number("x", "2.5") == 2.5 and validation.whole("n", 1000) == 1000
    for bad in (True, 1.5, 1e3, "3", None):
        with pytest.raises(InputError, match="whole number"):
            validation.whole("n", bad)
    with pytest.raises(InputError, match="finite"):
        validation.guidance(float("-inf"))
    validation.canvas(4096, 4096, 16)  # the ceiling itself is allowed
    with pytest.raises(InputError, match="4104x4096"):
        validation.canvas(4096, 4104, 16)


# -- nodes -------------------------------------------------------------------------------------------
class _Untouchable:
    """A model input that fails the test if a node uses it before refusing its settings."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was used ({name}) before the settings were checked")


def test_nodes_refuse_nan_guidance_and_bad_seeds_before_using_the_model():
    nodes = load_pack().NODE_CLASS_MAPPINGS
    video = torch.rand(24, 16, 16, 3)
    refiner = nodes["ST2VRandomizedBlendRefiner"]()
    common = dict(enhancer=_Untouchable(), video=video, prompt="a", negative_prompt="", mode="randomized",
                  chunk=24, overlap=8, strength=0.6, steps=30, seed=0, width=0, height=0, sde_noise="gaussian")
    for value in (float("nan"), float("inf")):  # what a Primitive or an API client can send
        with pytest.raises(InputError, match="guidance must be a finite number"):
            refiner.refine(guidance=value, **common)
    with pytest.raises(InputError, match="seed must be"):
        refiner.refine(**{**common, "seed": -1}, guidance=7.5)
    with pytest.raises(InputError, match="ceiling"):
        refiner.refine(**{**common, "width": 65536, "height": 65536}, guidance=7.5)
    with pytest.raises(InputError, match="seed must be"):
        nodes["SDVSRUpscale"]().upscale(sdvsr_model=_Untouchable(), video=video, seed=2**64, flow_tile="auto")
    with pytest.raises(InputError, match="text guidance|guidance must be a finite"):
        nodes["ST2VCAMExtender"]().extend(st2v_model=_Untouchable(), video=video, prompt="a", negative_prompt="",
                                          seed=0, steps=2, text_guidance=float("nan"), anchor_guidance=7.5)


# -- outputs -----------------------------------------------------------------------------------------
def test_output_equal_to_an_input_is_refused_and_the_input_kept(clip, tmp_path, capsys):
    before = clip.read_bytes()
    refused(upscale_args(clip, clip), capsys, "also an input file", "another name")
    refused(refine_args(clip, clip), capsys, "also an input file")
    refused(["demo", "--init-video", clip, "--out", clip, "--frames", "30"], capsys, "also an input file")
    ckpt = tmp_path / "w.safetensors"
    files.save_safetensors({"w": torch.ones(2)}, ckpt)
    refused(["convert", ckpt, ckpt], capsys, "also an input file")
    assert clip.read_bytes() == before


def test_unwritable_outputs_are_refused_before_any_work(clip, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    refused(upscale_args(clip, blocker / "out.mp4"), capsys, "is a file, not a folder")
    refused(generate_args(blocker / "sub" / "out.mp4"), capsys, "is a file, not a folder")
    refused(upscale_args(clip, tmp_path), capsys, "is a folder; give a file name")
    refused(["make-tiny", "--models-dir", blocker], capsys, "is a file, not a folder")
    refused(["generate", "--prompt", "a", "--st2v", NO_MODEL, "--base", NO_MODEL, "--out", tmp_path / "g.mp4",
             "--state", blocker], capsys, "resume state folder", "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder anyway: no read-only folder "
                                               "can be made here (the EACCES path is covered by the next test)")
def test_read_only_folder_is_refused(clip, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        refused(upscale_args(clip, locked / "o.mp4"), capsys, "no permission to write in")
        refused(["make-tiny", "--models-dir", locked / "m"], capsys, "no permission to write in")
    finally:
        locked.chmod(0o755)


def test_read_only_folder_check_and_os_errors_are_one_line(clip, tmp_path, capsys, monkeypatch):
    # as root no folder is read-only to us, so the permission answer is simulated (os.access), and a
    # write that fails with EROFS/ENOSPC anyway (a race, a quota) becomes one line through the CLI
    monkeypatch.setattr(validation.os, "access", lambda path, mode: False)
    refused(upscale_args(clip, tmp_path / "o.mp4"), capsys, "no permission to write in", "choose another place")
    monkeypatch.undo()
    msg = validation.os_error_message(OSError(errno.EROFS, "Read-only file system", "/x/out.mp4"), "upscale")
    assert msg == "upscale failed: Read-only file system: /x/out.mp4 (the file system is read-only: choose a " \
                  "writable folder)."


def test_full_disk_is_refused_at_once(clip, tmp_path, capsys, monkeypatch):
    # no small tmpfs is writable on this machine: the free space is simulated (shutil.disk_usage)
    class Usage:
        total, used, free = 10**9, 10**9 - 1000, 1000

    monkeypatch.setattr(validation.shutil, "disk_usage", lambda path: Usage)
    refused(upscale_args(clip, tmp_path / "o.mp4"), capsys, "not enough free space", "the upscaled video")
    refused(generate_args(tmp_path / "g.mp4", "--frames", "24", "--height", "64", "--width", "64"), capsys,
            "not enough free space", f"{24 * 64 * 64 * 3 / 1000:,.1f} KB needed")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_a_state_save_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    # ENOSPC simulated at the first write of the resume state (no small tmpfs is writable here)
    from streaming_core.pipelines import run_folder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "v.mp4.state"))

    monkeypatch.setattr(run_folder.RunFolder, "_save_frames", full)
    out = tmp_path / "v.mp4"
    refused(["demo", "--frames", "16", "--out", out] + FAST, capsys, "No space left on device", "disk is full")
    assert list(tmp_path.iterdir()) == []  # no mp4, no .partial, no half state


# -- leftovers and resume states ---------------------------------------------------------------------
def test_rejected_init_video_leaves_nothing(tmp_path, capsys):
    odd = tmp_path / "odd.mp4"
    write_video(odd, torch.rand(10, 36, 36, 3))  # even (H.264) but not a multiple of 8
    out = tmp_path / "x.mp4"
    refused(["demo", "--init-video", odd, "--frames", "30", "--out", out], capsys, "multiple of 8")
    refused(["demo", "--init-video", odd.with_name("none.mp4"), "--frames", "30", "--out", out], capsys)
    short = tmp_path / "short.mp4"
    write_video(short, torch.rand(20, 64, 64, 3))
    refused(["demo", "--init-video", short, "--frames", "12", "--out", out], capsys, "already has 20 frames")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4", "short.mp4"]


def _run_demo_subprocess(args, **kwargs) -> subprocess.Popen:
    code = ("import sys, torch; torch.set_num_threads(1); from streaming_core.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def _chunks(state: Path) -> list[torch.Tensor]:
    from safetensors.torch import load_file

    return [load_file(str(p))["frames"] for p in sorted((state / "frames").glob("chunk_*.safetensors"))]


def test_kill_9_during_generate_then_resume_gives_the_same_frames(tmp_path, capsys):
    common = ["demo", "--seed", "5", "--prompt", "a boat", "--frames", "24", "--keep-state"] + FAST
    killed = tmp_path / "killed.mp4"
    state = Path(str(killed) + ".state")
    proc = _run_demo_subprocess(common + ["--out", killed])
    try:
        deadline = time.monotonic() + 120
        while not (state / "state.safetensors").exists():  # the first chunk's state is saved
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no state within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not killed.exists()  # the mp4 is published only by a finished run
    rc, err = run_cli(common + ["--out", killed, "--resume", state], capsys)
    assert rc == 0, err
    direct = tmp_path / "direct.mp4"
    assert run_cli(common + ["--out", direct], capsys)[0] == 0
    resumed, reference = _chunks(state), _chunks(Path(str(direct) + ".state"))
    # the frames before encoding (uint8) are the same; same kernels, one thread in both processes
    assert len(resumed) == len(reference) == 2
    assert all(torch.equal(a, b) for a, b in zip(resumed, reference))
    assert read_video(killed).shape == read_video(direct).shape == (24, 64, 64, 3)


def test_truncated_chunk_file_names_the_damage_and_no_useless_resume(tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert run_cli(["demo", "--frames", "16", "--keep-state", "--out", out] + FAST, capsys)[0] == 0
    state = Path(str(out) + ".state")
    chunk = state / "frames" / "chunk_000000.safetensors"
    chunk.write_bytes(chunk.read_bytes()[:100])
    line = refused(["demo", "--frames", "24", "--out", tmp_path / "w.mp4", "--resume", state] + FAST, capsys,
                   "chunk 0", "damaged", "start a new run")
    assert "--resume" not in line


# -- bad files ---------------------------------------------------------------------------------------
def _module_with(tmp_path, monkeypatch, name: str, source: str):
    """Import a throwaway module from ``source`` (to pickle its objects); ``forget`` makes it unimportable."""
    folder = tmp_path / "throwaway"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    module = __import__(name)

    def forget():
        sys.modules.pop(name, None)
        sys.path[:] = [p for p in sys.path if p != str(folder)]
        (folder / f"{name}.py").unlink()

    return module, forget


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_any_unknown_global_becomes_inert_and_nothing_runs(tmp_path, monkeypatch, zip_format):
    marker = tmp_path / "code_ran"
    mod, forget = _module_with(tmp_path, monkeypatch, "some_trainer_lib", f"""
import builtins, subprocess

class HyperParams:
    def __init__(self):
        self.lr, self.name = 1e-4, "run"
    def __setstate__(self, state):  # would run at load time if the real class were used
        open({str(marker)!r}, "w").write("setstate")

class Exec:
    def __reduce__(self):
        return (builtins.exec, ("open({str(marker)!r}, 'w').write('exec')",))

class Shell:
    def __reduce__(self):
        return (subprocess.call, (["touch", {str(marker)!r}],))

class Nested:
    def __init__(self):
        self.inner = [HyperParams(), {{"x": Exec()}}]
""")
    weights = {"unet.w": torch.randn(3, 4), "vae.b": torch.arange(5.0)}
    ckpt = {"state_dict": weights, "hyper_parameters": mod.HyperParams(), "payload": mod.Exec(),
            "shell": mod.Shell(), "loops": mod.Nested(), "epoch": 7}
    path = tmp_path / ("m.ckpt" if zip_format else "m_legacy.ckpt")
    torch.save(ckpt, path, _use_new_zipfile_serialization=zip_format)
    forget()  # the classes no longer exist anywhere: loading must not need them
    assert b"some_trainer_lib" in path.read_bytes()  # the file really names the vanished module
    sd = files.load_state_dict(path)
    assert sorted(sd) == sorted(weights) and all(torch.equal(sd[k], weights[k]) for k in weights)
    raw = files._torch_load(path, "cpu")
    assert raw["epoch"] == 7
    assert type(raw["hyper_parameters"]).__name__ == "HyperParams"
    assert isinstance(raw["hyper_parameters"], files._InertPlaceholder)
    assert isinstance(raw["payload"], files._InertPlaceholder)  # exec(...) was stored, not called
    assert not marker.exists()
    assert "some_trainer_lib" not in sys.modules


def test_hand_written_pickle_with_unknown_globals_loads_its_tensors(tmp_path):
    """A torch zip checkpoint whose data.pkl is written by hand: globals of modules that never existed,
    and a REDUCE of builtins.eval on a string of code."""
    marker = tmp_path / "eval_ran"
    path = tmp_path / "hand.ckpt"
    torch.save({"state_dict": {"w": torch.full((2, 2), 3.0)}}, path)
    import zipfile

    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl_name = next(n for n in names if n.endswith("data.pkl"))
        records = {n: z.read(n) for n in names}
    original = records[pkl_name]
    assert original[:2] == b"\x80\x02" and original.endswith(b".")  # protocol 2, STOP
    code = f"open({str(marker)!r}, 'w').write('x')"
    # {'state_dict': ..., 'evil': eval(code), 'obj': nowhere.Thing(*()) built with a dict}: inserted before
    # the final SETITEMS of the top-level dict would be complex; instead wrap: a 2-tuple (original dict, extras)
    text = code.encode()
    extra = (b"c__builtin__\neval\n" + b"X" + len(text).to_bytes(4, "little") + text + b"\x85R"
             + b"cnowhere.at.all\nThing\n)\x81}X\x01\x00\x00\x00a\x8a\x01\x05sb" + b"\x86")
    records[pkl_name] = original[:-1] + extra + b"\x86."  # (orig, (eval(code), Thing)) as a pair
    hacked = tmp_path / "hand2.ckpt"
    with zipfile.ZipFile(hacked, "w", compression=zipfile.ZIP_STORED) as z:
        for n in names:
            z.writestr(zipfile.ZipInfo(n), records[n])
    obj = files._torch_load(hacked, "cpu")
    sd, extras = obj
    assert torch.equal(sd["state_dict"]["w"], torch.full((2, 2), 3.0))
    evil, thing = extras
    assert isinstance(evil, files._InertPlaceholder) and evil._args == (code,)
    assert type(thing).__name__ == "Thing" and thing._state == {"a": 5}
    assert not marker.exists()


def test_blocked_modules_and_truncated_files_are_named(tmp_path, capsys):
    class RunsShell:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    evil = tmp_path / "unet" / "diffusion_pytorch_model.bin"
    evil.parent.mkdir()
    torch.save({"w": torch.ones(1), "x": RunsShell()}, evil)
    with pytest.raises(CheckpointError, match="refusing to load.*nothing was run"):
        files.load_state_dict(evil)
    # inspect on the folder that holds it says so, rather than "holds no weight file"
    line = refused(["inspect", tmp_path], capsys, "refusing to load")
    assert "holds no weight" not in line
    with pytest.raises(CheckpointError, match="refusing to load"):
        inspect_path(tmp_path)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.randn(64, 64)}}, good)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:3000])
    refused(["inspect", cut], capsys, "truncated or corrupt", "fetch the file again")
    text = tmp_path / "notes.safetensors"
    text.write_text("this is not a weight file at all")
    refused(["inspect", text], capsys, "not a safetensors file")
    assert not (tmp_path / "ran").exists()


def test_bad_videos_are_named(tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 2000)
    refused(upscale_args(junk, tmp_path / "o.mp4"), capsys, "junk.mp4")
    refused(refine_args(tmp_path / "missing.mp4", tmp_path / "o.mp4"), capsys, "not found")
    refused(["demo", "--init-video", junk, "--frames", "30", "--out", tmp_path / "x.mp4"], capsys, "junk.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]
