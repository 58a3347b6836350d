"""One tiny models tree per test process (``make-tiny``'s tree, ~12 s and ~320 MB to write), shared by
every test module that needs it: the node tests and the real-ComfyUI tests."""

from __future__ import annotations

from pathlib import Path

from streaming_core.tiny.tree import write_tree

_TREE: dict[str, Path] = {}


def tiny_models_dir(tmp_path_factory) -> Path:
    """The tree, written on first use into the session's temporary folder."""
    if "dir" not in _TREE:
        target = tmp_path_factory.getbasetemp() / "tiny_models_tree"
        write_tree(target, log=lambda line: None)
        _TREE["dir"] = target
    return _TREE["dir"]
