"""scripts/vram_check.py (the GPU memory check) runs end to end: here at tiny size on the CPU."""

from __future__ import annotations

import importlib.util
import json

from comfy_harness_util import REPO


def test_vram_check_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("vram_check", REPO / "scripts" / "vram_check.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "rows.jsonl"
    assert script.main(["--tiny", "--device", "cpu", "--stages", "initial", "--repeats", "1",
                        "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    modes = [(r["stage"].split()[0], r["mode"]) for r in rows]
    assert modes == [(stage, mode) for stage in ("initial",)
                     for mode in ("full", "partial@25%", "partial@50%", "partial@75%", "fp8_e4m3fn full")]
    for r in rows:
        assert r["peak_gib"] > 0 and r["call_s"] > 0 and r["estimate_gib"] > 0, r
