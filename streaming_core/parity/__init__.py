"""Parity with the official implementations, checked against fixture directories.

A fixture directory holds ``config.json`` (its ``kind`` picks the runner below), weights in the
official key layout and the inputs/outputs the official code computed. Each runner builds our model
from the config alone, so fixtures with other seeds or other tiny configs work the same way.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from .report import CaseResult

# config.json "kind" -> module with ``run_cases(fixture_dir: Path, device) -> Iterator[CaseResult]``
RUNNERS = {
    "streamingt2v": "streaming_core.parity.st2v",
    "ms_vid2vid_xl_unet": "streaming_core.parity.msvid2vid",
    "stream_diffvsr": "streaming_core.parity.sdvsr",
}


def fixture_kind(fixture_dir: str | Path) -> str:
    config = Path(fixture_dir) / "config.json"
    if not config.is_file():
        raise InputError(f"{fixture_dir} is not a fixture directory: it has no config.json.")
    kind = json.loads(config.read_text()).get("kind")
    if kind not in RUNNERS:
        raise InputError(f"{config} has kind {kind!r}; known kinds: {', '.join(sorted(RUNNERS))}.")
    return kind


def run_fixture(fixture_dir: str | Path, device: str = "cpu") -> Iterator[CaseResult]:
    runner = importlib.import_module(RUNNERS[fixture_kind(fixture_dir)])
    yield from runner.run_cases(Path(fixture_dir), device)
