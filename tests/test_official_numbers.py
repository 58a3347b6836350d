"""Every default of the pipelines, the CLI, the nodes and the docs is the official number, read from
``streaming_core/official.py`` (one source per product); the expected values are the specs'
(streamingt2v_spec.md §0 rows 1-3, §4.2, the enhancement section; stream_diffvsr_spec.md's
hard-coded settings), written here from the specs, not from the code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pack_loader import load_pack
from streaming_core.cli import refine as refine_cli
from streaming_core.cli import upscale as upscale_cli
from streaming_core.cli.generate import add_generation_arguments
from streaming_core.official import REFINE as REFINE_FACTS
from streaming_core.pipelines.long_video import ExtensionSettings, InitialChunkSettings
from streaming_core.pipelines.refine import RefineSettings
from streaming_core.pipelines.upscale import UpscaleSettings
from streaming_core.sampling.sdedit import SDEditSettings
from streaming_core.schedules.vp_sigmas import VPSigmaTable, strength_to_timestep

REPO = Path(__file__).resolve().parent.parent
FIRST_CHUNK = {"steps": 50, "guidance": 9.0, "size": 256}  # §0 row 1: 50 steps, guidance 9.0, 256x256
EXTENSION = {"steps": 50, "eta": 1.0, "guidance": 7.5}  # §0 row 2: DDIM 50 steps, eta 1.0, CFG 7.5
# §0 row 3: 24-frame chunks, overlap 8, SDEdit from t=599 (strength 0.6), 30 DPM++ 2M SDE steps, CFG 7.5
REFINE = {"chunk": 24, "overlap": 8, "strength": 0.6, "steps": 30, "guidance": 7.5}
UPSCALE_STEPS = 4  # Stream-DiffVSR: steps 4 (t = 999, 749, 499, 249)
FPS = 8.0  # §4.1 step 6: the mp4 is saved at frame_rate 8


def test_pipeline_settings_default_to_the_official_numbers():
    first = InitialChunkSettings()
    assert (first.steps, first.guidance, first.height, first.width) == (50, 9.0, 256, 256)
    # the official samplers (§0 rows 1-2): DPM-Solver++ for the first chunk, DDIM (eta 1) for the extensions
    assert (first.sampler, first.frames, first.eta) == ("dpmpp_2m", 16, 0.0)
    ext = ExtensionSettings(["a boat"])
    assert (ext.steps, ext.eta, ext.guidance) == (EXTENSION["steps"], EXTENSION["eta"], EXTENSION["guidance"])
    assert (ext.sampler, ext.frames, ext.anchor_guidance) == ("ddim", 16, None)


def test_cli_defaults_and_help_name_the_official_numbers():
    parser = argparse.ArgumentParser()
    add_generation_arguments(parser)
    args = parser.parse_args(["--prompt", "x"])
    assert (args.base_steps, args.base_guidance, args.height, args.width) == (50, 9.0, 256, 256)
    assert (args.steps, args.eta) == (50, 1.0)
    help_text = " ".join(parser.format_help().split())
    assert "official 9.0" in help_text and "official 7.5" in help_text and "official 1.0" in help_text


def test_node_defaults_are_the_official_numbers():
    nodes = load_pack().nodes
    first = nodes.generate.ST2VInitialChunk.INPUT_TYPES()["required"]
    assert [first[k][1]["default"] for k in ("steps", "guidance", "width", "height")] == [50, 9.0, 256, 256]
    assert "official: 9.0" in first["guidance"][1]["tooltip"]


def test_refine_and_upscale_settings_default_to_the_official_numbers():
    refine = RefineSettings()
    assert {k: getattr(refine, k) for k in REFINE} == REFINE
    sampler = SDEditSettings(599, 30)
    assert (sampler.chunk, sampler.overlap) == (REFINE["chunk"], REFINE["overlap"])
    assert strength_to_timestep(REFINE_FACTS.strength, VPSigmaTable.ms_vid2vid()) == REFINE_FACTS.start_timestep == 599
    assert UpscaleSettings().steps == UPSCALE_STEPS
    from streaming_core.models.sdvsr.bundle import NUM_STEPS  # imports diffusers

    assert NUM_STEPS == UPSCALE_STEPS


def test_refine_and_upscale_cli_defaults_and_help_name_the_official_numbers():
    parser = argparse.ArgumentParser()
    refine_cli.add_arguments(parser)
    args = parser.parse_args(["--enhancer", "e", "--video", "v", "--prompt", "p", "--out", "o.mp4"])
    assert {k: getattr(args, k) for k in REFINE} == REFINE
    help_text = " ".join(parser.format_help().split())
    assert "(0.6 = official t=599)" in help_text and "(default 30)" in help_text and "(default 7.5)" in help_text
    parser = argparse.ArgumentParser()
    upscale_cli.add_arguments(parser)
    assert parser.parse_args(["--sdvsr", "d", "--video", "v", "--out", "o.mp4"]).steps == UPSCALE_STEPS


def test_extension_and_refiner_nodes_default_to_the_official_numbers():
    nodes = load_pack().nodes
    refiner = nodes.refine.ST2VRandomizedBlendRefiner.INPUT_TYPES()["required"]
    assert {k: refiner[k][1]["default"] for k in REFINE} == REFINE
    assert all(f"official: {REFINE[k]}" in refiner[k][1]["tooltip"] for k in REFINE)
    for cls in (nodes.generate.ST2VCAMExtender, nodes.chunk_loop.ST2VChunkLoop):
        inputs = cls.INPUT_TYPES()["required"]
        assert inputs["steps"][1]["default"] == EXTENSION["steps"]
        assert inputs["text_guidance"][1]["default"] == inputs["anchor_guidance"][1]["default"] == EXTENSION["guidance"]
        assert f"official: {EXTENSION['steps']}" in inputs["steps"][1]["tooltip"]


def test_video_rate_defaults_to_the_official_8_fps():
    parser = argparse.ArgumentParser()
    add_generation_arguments(parser)
    assert parser.parse_args(["--prompt", "x"]).fps == FPS
    assert "(default 8, as official)" in " ".join(parser.format_help().split())
    nodes = load_pack().nodes
    assert nodes.chunk_loop.ST2VChunkLoop.INPUT_TYPES()["optional"]["fps"][1]["default"] == FPS


def test_example_workflows_use_the_official_numbers():
    """scripts/make_workflows.py reads official.py; the files it wrote hold the spec's numbers."""
    expected = {
        "ST2VInitialChunk": {"steps": 50, "guidance": 9.0, "width": 256, "height": 256, "frames": 16},
        "ST2VChunkLoop": {"steps": 50, "text_guidance": 7.5, "anchor_guidance": 7.5, "fps": FPS},
        "ST2VCAMExtender": {"steps": 50, "text_guidance": 7.5, "anchor_guidance": 7.5},
        "ST2VRandomizedBlendRefiner": {**REFINE, "fps": FPS},
        "CreateVideo": {"fps": FPS},
    }
    seen = set()
    for path in sorted((REPO / "example_workflows" / "api").glob("streamingt2v_*.json")):
        for node in json.loads(path.read_text()).values():
            want = expected.get(node["class_type"])
            if want:
                seen.add(node["class_type"])
                widgets = {k: v for k, v in node["inputs"].items() if k in want and not isinstance(v, list)}  # no links
                assert widgets == {k: want[k] for k in widgets}, (path.name, node["class_type"])
    assert seen == set(expected)


@pytest.mark.parametrize("doc,line_start,stated", [
    ("README.md", "| ST2V Initial Chunk |", ["50 steps", "guidance 9"]),
    ("README.md", "| ST2V Randomized Blend Refiner |", ["chunk 24, overlap 8, strength 0.6, 30 steps"]),
    ("docs/nodes.md", "| ST2V CAM Extender", ["steps (50)", "(7.5;"]),
    ("docs/nodes.md", "| ST2V Randomized Blend Refiner",
     ["chunk (24), overlap (8), strength (0.6), steps (30), guidance (7.5)"]),
    ("docs/generate.md", "- Guidance of the extensions", ["(7.5)"]),
    ("docs/refine.md", "chunk, without seams.", ["official strength 0.6 = t 599"]),
])
def test_the_docs_state_the_official_numbers(doc, line_start, stated):
    """The docs cannot import ``official.py``: the lines that state its numbers are held to the specs here,
    so a changed number fails until the docs say the same."""
    lines = [line for line in (REPO / doc).read_text().splitlines() if line.startswith(line_start)]
    assert len(lines) == 1, f"{doc}: no single line starting with {line_start!r}"
    assert all(text in lines[0] for text in stated), (doc, lines[0])
