"""Every default of the generation pipeline, the CLI and the nodes is the official number, read from
``streaming_core/official.py``; the expected values are the spec's (streamingt2v_spec.md §0, §4.2)."""

from __future__ import annotations

import argparse

from pack_loader import load_pack
from streaming_core.cli.generate import add_generation_arguments
from streaming_core.pipelines.long_video import ExtensionSettings, InitialChunkSettings

FIRST_CHUNK = {"steps": 50, "guidance": 9.0, "size": 256}  # §0 row 1: 50 steps, guidance 9.0, 256x256
EXTENSION = {"steps": 50, "eta": 1.0, "guidance": 7.5}  # §0 row 2: DDIM 50 steps, eta 1.0, CFG 7.5


def test_pipeline_settings_default_to_the_official_numbers():
    first = InitialChunkSettings()
    assert (first.steps, first.guidance, first.height, first.width) == (50, 9.0, 256, 256)
    ext = ExtensionSettings(["a boat"])
    assert (ext.steps, ext.eta, ext.guidance) == (EXTENSION["steps"], EXTENSION["eta"], EXTENSION["guidance"])


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
