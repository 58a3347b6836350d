"""Every registered node has a schema ComfyUI accepts and the pack's conventions ask for."""

from __future__ import annotations

import inspect

import pytest

from pack_loader import load_pack

PACK = load_pack()
NODES = PACK.NODE_CLASS_MAPPINGS
OUR_TYPES = {"ST2V_MODEL", "ST2V_BASE", "ST2V_ANCHOR", "ST2V_ENHANCER", "SDVSR_MODEL", "SDVSR_STATE", "ST2V_LOOP_STATE"}
NATIVE_TYPES = {
    "IMAGE", "LATENT", "MODEL", "CLIP", "VAE", "CONDITIONING", "CLIP_VISION", "CLIP_VISION_OUTPUT", "MASK", "VIDEO",
    "AUDIO", "SIGMAS", "SAMPLER", "NOISE", "GUIDER", "UPSCALE_MODEL", "CONTROL_NET", "STYLE_MODEL", "GLIGEN",
    "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "*",
}
HIDDEN_VALUES = {"PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"}


def _inputs(cls):
    types = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in (types.get(section) or {}).items():
            yield section, name, spec


def test_the_pack_registers_nodes_with_display_names():
    assert "ST2VRandomizedBlendModel" in NODES
    assert set(PACK.NODE_DISPLAY_NAME_MAPPINGS) == set(NODES)
    assert all(isinstance(v, str) and v.strip() for v in PACK.NODE_DISPLAY_NAME_MAPPINGS.values())
    # one search word finds every node of the pack (the ids stay as they were, so saved workflows still load)
    assert [n for n, v in PACK.NODE_DISPLAY_NAME_MAPPINGS.items() if not v.startswith("ST2V ")] == []
    assert {"SDVSRLoader", "SDVSRUpscale"} <= set(NODES)


@pytest.mark.parametrize("node_id", sorted(NODES))
def test_node_schema(node_id):
    cls = NODES[node_id]
    assert node_id.startswith(("ST2V", "SDVSR")), "node ids carry the pack prefix"
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
    assert cls.CATEGORY == "StreamingT2V" or cls.CATEGORY.startswith("StreamingT2V/")

    types = cls.INPUT_TYPES()
    assert isinstance(types, dict) and set(types) <= {"required", "optional", "hidden"} and "required" in types
    for value in (types.get("hidden") or {}).values():
        assert value in HIDDEN_VALUES
    for section, name, spec in _inputs(cls):
        where = f"{node_id}.{name}"
        assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, f"{where}: (type, options) tuple"
        kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
        assert isinstance(options.get("tooltip"), str) and options["tooltip"].strip(), f"{where}: tooltip"
        if isinstance(kind, list):  # a model-file dropdown is empty where no model is installed
            assert all(isinstance(c, str) for c in kind), f"{where}: combo choices"
            assert not kind or options.get("default", kind[0]) in kind, f"{where}: default not a choice"
        else:  # "IMAGE,VIDEO": ComfyUI links either type (validation splits the name on commas)
            assert all(k in NATIVE_TYPES or k in OUR_TYPES for k in kind.split(",")), f"{where}: unknown type {kind}"
        if kind in ("INT", "FLOAT"):
            assert options["min"] <= options["default"] <= options["max"], f"{where}: default outside min/max"
            assert isinstance(options["default"], int if kind == "INT" else (int, float))

    assert isinstance(cls.RETURN_TYPES, tuple)
    for kind in cls.RETURN_TYPES:
        assert kind in NATIVE_TYPES or kind in OUR_TYPES, f"{node_id}: unknown output type {kind}"
    for attr in ("RETURN_NAMES", "OUTPUT_TOOLTIPS", "OUTPUT_IS_LIST"):
        if hasattr(cls, attr):
            assert len(getattr(cls, attr)) == len(cls.RETURN_TYPES), f"{node_id}.{attr} length"
    if not cls.RETURN_TYPES:
        assert getattr(cls, "OUTPUT_NODE", False), f"{node_id}: a node without outputs must be an OUTPUT_NODE"

    function = getattr(cls, cls.FUNCTION)
    params = inspect.signature(function).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for section, name, _ in _inputs(cls):
        assert takes_kwargs or name in params, f"{node_id}.{cls.FUNCTION} does not take {name}"
        if section == "optional":
            assert takes_kwargs or params[name].default is not inspect.Parameter.empty, f"{node_id}: optional {name} needs a default"
    for name in (types.get("hidden") or {}):
        assert takes_kwargs or name in params, f"{node_id}.{cls.FUNCTION} does not take hidden {name}"


def test_our_link_types_are_prefixed_uppercase():
    for kind in OUR_TYPES:
        assert kind.isupper() and kind.startswith(("ST2V_", "SDVSR_"))
