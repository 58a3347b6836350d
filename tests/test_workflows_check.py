"""Every shipped workflow is a valid UI workflow with an API twin that runs the same graph."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import workflow_check as wc
from pack_loader import load_pack

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "example_workflows"  # the folder ComfyUI's template browser reads
UI_FILES = sorted(EXAMPLES.glob("*.json"))
TWINS = json.loads((EXAMPLES / "api" / "twins.json").read_text())  # UI file name -> API twin file name


@pytest.fixture(scope="module")
def definitions(tmp_path_factory, monkeypatch_module):
    # File dropdowns must not depend on what a developer keeps under <pack>/models.
    monkeypatch_module.setenv("STREAMING_MODELS_DIR", str(tmp_path_factory.mktemp("no_models")))
    return wc.load_definitions(load_pack().NODE_CLASS_MAPPINGS)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_workflows_and_each_has_an_api_twin_and_a_thumbnail():
    assert UI_FILES, "example_workflows/ holds the example workflows"
    api_files = sorted(p.name for p in (EXAMPLES / "api").glob("*.json") if p.name != "twins.json")
    assert sorted(TWINS) == [p.name for p in UI_FILES] and sorted(TWINS.values()) == api_files
    for path in UI_FILES:  # the template browser shows <name>.jpg beside <name>.json
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb.name} is not a JPEG"
        assert path.stem[0].isupper() and "_" not in path.stem, f"{path.name}: the file name is the template's title"


@pytest.mark.parametrize("path", UI_FILES, ids=[p.name for p in UI_FILES])
def test_workflow_and_twin(path, definitions):
    ui, api = _load(path), _load(EXAMPLES / "api" / TWINS[path.name])
    assert wc.check_ui(ui, definitions) == []
    assert wc.check_api(api, definitions) == []
    assert wc.check_twins(ui, api, definitions) == []
    ours = {n["type"] for n in ui["nodes"]} & set(load_pack().NODE_CLASS_MAPPINGS)
    assert ours, "an example workflow shows at least one of our nodes"


def test_native_node_list_comes_from_a_real_comfyui():
    data = _load(wc.NATIVE_NODES_FILE)
    assert "object_info" in data["about"] and data["comfyui_version"] != "?"
    ksampler = data["nodes"]["KSampler"]["input"]["required"]
    assert ksampler["seed"][1]["control_after_generate"] is True


# The checker itself must catch what ComfyUI would reject -------------------------------------
WAN = EXAMPLES / "Wan 2.1 long video (Randomized Blend).json"
WAN_API = EXAMPLES / "api" / TWINS[WAN.name]


def _node(workflow, node_type):
    return next(n for n in workflow["nodes"] if n["type"] == node_type)


@pytest.mark.parametrize("mutate, expected", [
    pytest.param(lambda ui: _node(ui, "KSampler")["widgets_values"].__setitem__(4, "not_a_sampler"), "is not one of",
                 id="combo"),
    pytest.param(lambda ui: _node(ui, "ST2VRandomizedBlendModel")["widgets_values"].__setitem__(0, 0), "below the minimum",
                 id="min"),
    pytest.param(lambda ui: _node(ui, "ST2VRandomizedBlendModel")["widgets_values"].__setitem__(4, "sometimes"),
                 "control_after_generate", id="seed-control"),
    pytest.param(lambda ui: _node(ui, "KSampler")["widgets_values"].pop(), "widget values for", id="widget-count"),
    pytest.param(lambda ui: _node(ui, "VAEDecode").__setitem__("type", "NoSuchNode"), "unknown node type", id="type"),
    pytest.param(lambda ui: _node(ui, "VAEDecode")["inputs"][1].__setitem__("link", None), "required input vae",
                 id="unlinked"),
    pytest.param(lambda ui: ui["links"].append([99, 1, 0, 77, 0, "MODEL"]), "missing nodes", id="dangling-link"),
])
def test_checker_rejects_broken_ui(definitions, mutate, expected):
    ui = _load(WAN)
    mutate(ui)
    problems = wc.check_ui(ui, definitions)
    assert any(expected in p for p in problems), problems


def test_checker_rejects_broken_api_and_diverging_twins(definitions):
    ui, api = _load(WAN), _load(WAN_API)
    broken = copy.deepcopy(api)
    broken["9"]["inputs"]["steps"] = 0
    broken["9"]["inputs"]["model"] = ["3", 0]  # a VAE into a MODEL input
    del broken["9"]["inputs"]["cfg"]
    problems = wc.check_api(broken, definitions)
    assert any("below the minimum" in p for p in problems)
    assert any("is fed VAE" in p for p in problems)
    assert any("required input cfg missing" in p for p in problems)

    drift = copy.deepcopy(api)
    drift["7"]["inputs"]["blend"] = "pyramid"
    drift["9"]["inputs"]["positive"] = ["5", 0]
    problems = wc.check_twins(ui, drift, definitions)
    assert any("blend" in p for p in problems) and any("positive" in p for p in problems)
    assert wc.check_api(ui, definitions) == ["not an API-format workflow (expected {id: {class_type, inputs}})"]
