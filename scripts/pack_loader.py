"""Import the pack the way ComfyUI does: its root folder as a package, everything inside relative.

The nodes reach the core as ``<pack>.streaming_core``, while the core's own tests import it as the
top-level ``streaming_core``. Left alone, one pytest process would hold two copies of every core
module, and ``pytest.raises(streaming_core.errors.InputError)`` would miss the copy a node raises.
``load_pack`` therefore maps ``<pack>.streaming_core[.x]`` onto the top-level modules, so there is
exactly one core in the process, whichever way a test imports it.

Reach the nodes through ``load_pack().nodes``, never ``import nodes``: the top-level name ``nodes``
is ComfyUI's own module, and our nodes import the core relatively.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "streaming_long_video_pack"
_CORE = "streaming_core"


class _CoreAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``PACK_NAME.streaming_core...`` with the already importable ``streaming_core...``."""

    prefix = f"{PACK_NAME}.{_CORE}"

    def __init__(self):
        self._real_specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.prefix or fullname.startswith(self.prefix + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(_CORE + spec.name[len(self.prefix):])
        self._real_specs[id(module)] = module.__spec__
        return module

    def exec_module(self, module):
        # The import system stamped the alias spec on the real module; give it back its own.
        module.__spec__ = self._real_specs.pop(id(module), module.__spec__)


def load_pack() -> ModuleType:
    """The pack's root package (imported once per process)."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if not any(isinstance(f, _CoreAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, _CoreAlias())
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return module
