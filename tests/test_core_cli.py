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
