"""The CLI registry: every command resolves to a module with the two required functions."""

from __future__ import annotations

import importlib

import pytest

from streaming_core.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_exists_and_has_its_interface(name):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.run)


def test_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_user_facing_errors_print_without_traceback(capsys, tmp_path):
    assert main(["check-keys", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: key list not found") and "Traceback" not in err


@pytest.mark.parametrize("command", [
    ["refine", "--enhancer", "x", "--video", "v.mp4", "--prompt", "a", "--out", "o.mp4"],
    ["upscale", "--sdvsr", "x", "--raft", "r.pth", "--video", "v.mp4", "--out", "o.mp4"],
    ["generate", "--prompt", "a", "--out", "o.mp4"],
    ["bench"],
])
def test_every_command_names_a_bad_device(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(command + ["--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--device 'gpu' is not a device name" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_device_and_dtype_defaults():
    import torch

    from streaming_core.cli.devices import pick_device, pick_dtype

    assert pick_dtype("auto", torch.device("cuda")) == torch.float16 == pick_dtype(None, torch.device("cuda"))
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert pick_device("cpu") == torch.device("cpu")
