"""What every in-ComfyUI check script shares: the pack loaded as ComfyUI loads a custom node, and the
``check`` decorator that records each check's outcome instead of stopping at the first failure.

Imported by the scripts in this folder, which run in ComfyUI's own interpreter (their folder is first on
sys.path there); not a pytest module.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

PACK_DIR = Path(__file__).resolve().parents[2]


def load_pack_like_comfyui(tmp: Path) -> tuple[str, ModuleType]:
    """The pack under a dashed folder name (as users clone it), executed the way
    ``nodes.load_custom_node`` does; returns its module name (submodules live under it) and the module."""
    link = tmp / "ComfyUI-Streaming-Long-Video"
    link.symlink_to(PACK_DIR)
    module_name = str(link).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(module_name, str(link / "__init__.py"))
    pack = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = pack
    spec.loader.exec_module(pack)
    return module_name, pack


def checker(results: dict, limit: int):
    """A decorator that runs a check at once and records "ok" or "FAIL: <traceback>" under its name."""

    def check(fn):
        try:
            fn()
            results[fn.__name__] = "ok"
        except Exception:
            results[fn.__name__] = "FAIL: " + traceback.format_exc(limit=limit)
        return fn

    return check
