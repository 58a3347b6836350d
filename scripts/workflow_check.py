"""Static checks of ComfyUI workflows against node definitions, without a running ComfyUI.

Definitions come in /object_info form: ours are built from NODE_CLASS_MAPPINGS, native ones are
read from tests/data/native_nodes.json (a subset of a real ComfyUI's /object_info, see the script
that writes it). Every check returns a list of problems (empty: fine), so a test can show them all.

File dropdowns (the native ones recorded under "file_inputs" of the definitions file, and ours,
which are empty without models) accept any file name: which files exist depends on the install.
The harness test posts the API twins to a real ComfyUI for its own validation.

UI format (what the editor saves, what users load): ``nodes`` with positional ``widgets_values``
and ``links`` as ``[id, from_node, from_slot, to_node, to_slot, type]``. API format (what /prompt
takes): ``{id: {"class_type", "inputs": {name: value | [from_id, from_slot]}}}``. The widget order of
a node is its required then optional widget inputs, and an INT with ``control_after_generate``
(or a combo with an upload button) is followed by one extra UI-only value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NATIVE_NODES_FILE = REPO / "tests" / "data" / "native_nodes.json"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
UI_ONLY_NODES = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")


# ----------------------------------------------------------------------------- definitions
def object_info_of(cls) -> dict:
    """A classic node class in /object_info form (the parts the checks use)."""
    return {
        "input": cls.INPUT_TYPES(),
        "output": list(cls.RETURN_TYPES),
        "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        "category": getattr(cls, "CATEGORY", ""),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }


FILE_LIST = "st2v_file_list"  # our mark on a combo's options: a file dropdown
# Our optional-file dropdowns list a sentinel before the files ('none': use no file, 'auto': find it); with no
# models present, as in these checks, the sentinel alone is left, and any file name may be picked.
FILE_MENU_SENTINELS = ("none", "auto")


def _mark_file_inputs(nodes: dict, file_inputs: dict[str, list[str]]) -> None:
    for node_id, names in file_inputs.items():
        for section in nodes.get(node_id, {}).get("input", {}).values():
            for name in names:
                if isinstance(section, dict) and name in section:
                    spec = list(section[name])
                    options = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    section[name] = [spec[0], {**options, FILE_LIST: True}]


def load_definitions(node_class_mappings: dict) -> dict[str, dict]:
    data = json.loads(NATIVE_NODES_FILE.read_text())
    native = data["nodes"]
    _mark_file_inputs(native, data.get("file_inputs", {}))
    ours = {node_id: object_info_of(cls) for node_id, cls in node_class_mappings.items()}
    clash = sorted(set(native) & set(ours))
    if clash:
        raise ValueError(f"pack node ids collide with native ones: {clash}")
    return {**native, **ours}


def _inputs(definition: dict) -> list[tuple[str, Any, dict, bool]]:
    """(name, type, options, required) for required then optional inputs, in order."""
    out = []
    for section, required in (("required", True), ("optional", False)):
        for name, spec in (definition.get("input", {}).get(section) or {}).items():
            spec = list(spec) if isinstance(spec, (list, tuple)) else [spec]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((name, spec[0], options, required))
    return out


def _is_widget(kind, options: dict) -> bool:
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _choices(kind, options: dict) -> list | None:
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return list(options.get("options", []))
    return None


def widget_layout(definition: dict) -> list[tuple[str, Any, dict, str]]:
    """The UI's ``widgets_values`` slots: (input name, type, options, 'value'|'control'|'upload')."""
    layout = []
    for name, kind, options, _ in _inputs(definition):
        if not _is_widget(kind, options):
            continue
        layout.append((name, kind, options, "value"))
        if kind == "INT" and options.get("control_after_generate"):
            layout.append((name, kind, options, "control"))
        if _choices(kind, options) is not None and any(options.get(flag) for flag in UPLOAD_FLAGS):
            layout.append((name, kind, options, "upload"))
    return layout


def check_value(where: str, kind, options: dict, value) -> list[str]:
    """What ComfyUI's validation would reject: wrong type, outside min/max, not a combo choice."""
    choices = _choices(kind, options)
    if options.get(FILE_LIST) or choices == [] or (choices is not None and len(choices) == 1
                                                   and choices[0] in FILE_MENU_SENTINELS):  # a file dropdown
        return [] if isinstance(value, str) and value else [f"{where}: {value!r} is not a file name"]
    if choices is not None:
        return [] if value in choices else [f"{where}: {value!r} is not one of {choices[:12]}"]
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: {value!r} is not an integer"]
    elif kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: {value!r} is not a number"]
    elif kind == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    elif kind == "STRING":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    problems = []
    if "min" in options and value < options["min"]:
        problems.append(f"{where}: {value} is below the minimum {options['min']}")
    if "max" in options and value > options["max"]:
        problems.append(f"{where}: {value} is above the maximum {options['max']}")
    return problems


def _types_match(output_type: str, input_type) -> bool:
    if isinstance(input_type, list) or output_type == "*" or input_type == "*":
        return True
    return output_type == input_type or output_type in str(input_type).split(",")


# ----------------------------------------------------------------------------- UI format
def ui_widget_values(node: dict, definition: dict) -> tuple[dict[str, Any], list[str]]:
    """Widget values of a UI node by input name, plus problems with their count or controls."""
    where = f"UI node {node.get('id')} ({node.get('type')})"
    layout = widget_layout(definition)
    values = node.get("widgets_values", [])
    if isinstance(values, dict):  # some V3 nodes save a dict keyed by input name
        return dict(values), []
    if len(values) != len(layout):
        names = [name + ("" if slot == "value" else f"<{slot}>") for name, _, _, slot in layout]
        return {}, [f"{where}: {len(values)} widget values for {len(layout)} widgets {names}"]
    named, problems = {}, []
    for (name, kind, options, slot), value in zip(layout, values):
        if slot == "value":
            named[name] = value
        elif slot == "control" and value not in CONTROL_VALUES:
            problems.append(f"{where}: control_after_generate of {name} is {value!r}, not one of {CONTROL_VALUES}")
    return named, problems


def check_ui(workflow: dict, definitions: dict) -> list[str]:
    problems = []
    for key in ("nodes", "links"):
        if not isinstance(workflow.get(key), list):
            return [f"not a UI-format workflow: '{key}' list missing"]
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    for link_id, src, src_slot, dst, dst_slot, link_type in workflow["links"]:
        if src not in nodes or dst not in nodes:
            problems.append(f"link {link_id} joins missing nodes {src} -> {dst}")
            continue
        outputs, inputs = nodes[src].get("outputs", []), nodes[dst].get("inputs", [])
        if src_slot >= len(outputs) or link_id not in (outputs[src_slot].get("links") or []):
            problems.append(f"link {link_id} is not listed on output {src_slot} of node {src}")
        if dst_slot >= len(inputs) or inputs[dst_slot].get("link") != link_id:
            problems.append(f"link {link_id} is not the link of input {dst_slot} of node {dst}")
    for node in workflow["nodes"]:
        kind = node.get("type")
        where = f"UI node {node.get('id')} ({kind})"
        if kind in UI_ONLY_NODES:
            continue
        definition = definitions.get(kind)
        if definition is None:
            problems.append(f"{where}: unknown node type")
            continue
        values, value_problems = ui_widget_values(node, definition)
        problems += value_problems
        spec = {name: (k, o, req) for name, k, o, req in _inputs(definition)}
        for name, value in values.items():
            problems += check_value(f"{where} input {name}", spec[name][0], spec[name][1], value)
        linked = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            name = slot.get("name")
            if name not in spec:
                problems.append(f"{where}: linked input {name!r} does not exist")
                continue
            link = links.get(slot["link"])
            if link is None:
                problems.append(f"{where}: input {name} uses missing link {slot['link']}")
                continue
            source = definitions.get(nodes[link[1]]["type"]) if link[1] in nodes else None
            if source is not None and not _types_match(source["output"][link[2]], spec[name][0]):
                problems.append(f"{where}: input {name} ({spec[name][0]}) is fed {source['output'][link[2]]}")
            linked[name] = link
        for name, (k, options, required) in spec.items():
            if required and not _is_widget(k, options) and name not in linked:
                problems.append(f"{where}: required input {name} ({k}) is not connected")
    return problems


# ----------------------------------------------------------------------------- API format
def check_api(prompt: dict, definitions: dict) -> list[str]:
    problems = []
    if "nodes" in prompt or not prompt:
        return ["not an API-format workflow (expected {id: {class_type, inputs}})"]
    for node_id, node in prompt.items():
        kind = node.get("class_type")
        where = f"API node {node_id} ({kind})"
        definition = definitions.get(kind)
        if definition is None:
            problems.append(f"{where}: unknown node type")
            continue
        spec = {name: (k, o, req) for name, k, o, req in _inputs(definition)}
        inputs = node.get("inputs", {})
        for name, value in inputs.items():
            if name not in spec:
                problems.append(f"{where}: unknown input {name!r}")
                continue
            k, options, _ = spec[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
                source = prompt.get(value[0])
                if source is None:
                    problems.append(f"{where}: input {name} links to missing node {value[0]}")
                    continue
                outputs = definitions.get(source.get("class_type"), {}).get("output", [])
                if value[1] >= len(outputs):
                    problems.append(f"{where}: input {name} links to output {value[1]} of {value[0]}, which has {len(outputs)}")
                elif not _types_match(outputs[value[1]], k):
                    problems.append(f"{where}: input {name} ({k}) is fed {outputs[value[1]]}")
            elif _is_widget(k, options):
                problems += check_value(f"{where} input {name}", k, options, value)
            else:
                problems.append(f"{where}: input {name} ({k}) needs a link, got {value!r}")
        for name, (k, options, required) in spec.items():
            if required and name not in inputs:
                problems.append(f"{where}: required input {name} missing")
    return problems


# ----------------------------------------------------------------------------- twins
def check_twins(ui: dict, api: dict, definitions: dict) -> list[str]:
    """The API twin runs the same graph: same nodes and types, same widget values, same links."""
    problems = []
    ui_nodes = {str(n["id"]): n for n in ui["nodes"] if n.get("type") not in UI_ONLY_NODES}
    links = {link[0]: link for link in ui["links"]}
    if set(ui_nodes) != set(api):
        problems.append(f"node ids differ: UI only {sorted(set(ui_nodes) - set(api))}, API only {sorted(set(api) - set(ui_nodes))}")
    for node_id in sorted(set(ui_nodes) & set(api)):
        ui_node, api_node = ui_nodes[node_id], api[node_id]
        where = f"node {node_id}"
        if ui_node["type"] != api_node.get("class_type"):
            problems.append(f"{where}: UI type {ui_node['type']} vs API class_type {api_node.get('class_type')}")
            continue
        definition = definitions.get(ui_node["type"])
        if definition is None:
            continue
        values, _ = ui_widget_values(ui_node, definition)
        api_inputs = api_node.get("inputs", {})
        for name, value in values.items():
            if name in api_inputs and isinstance(api_inputs[name], list) and len(api_inputs[name]) == 2:
                continue  # a widget converted to an input and linked in both
            if api_inputs.get(name) != value:
                problems.append(f"{where} ({ui_node['type']}) {name}: UI {value!r} vs API {api_inputs.get(name)!r}")
        for slot in ui_node.get("inputs", []):
            if slot.get("link") is None:
                continue
            link = links[slot["link"]]
            expected = [str(link[1]), link[2]]
            if api_inputs.get(slot["name"]) != expected:
                problems.append(f"{where} ({ui_node['type']}) {slot['name']}: UI link {expected} vs API {api_inputs.get(slot['name'])!r}")
    return problems
