"""Write the pack's example workflows: each as a UI file (example_workflows/, what users load from
ComfyUI's template browser, under a readable title), its thumbnail (example_workflows/<title>.jpg, a
diagram of its groups drawn here) and its API twin (example_workflows/api/, what tests post to
ComfyUI), from one description. example_workflows/api/twins.json pairs each UI file with its twin.

Usage: python scripts/make_workflows.py   (from the pack root, with the test environment active)

Why generated: a UI file repeats every link three times (the link table, the source output, the
target input) and every widget by position; writing both formats from one description keeps them
twins by construction. Widget order and slot types come from the node definitions the workflow
checker uses (ours from the pack, native ones from tests/data/native_nodes.json).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import workflow_check as wc  # scripts/ (this file's folder) is on the path when run as a script
from pack_loader import REPO, load_pack
from workflow_thumbnails import thumbnail

if str(REPO) not in sys.path:  # the core, for its official numbers (the pack root is not on a script's path)
    sys.path.insert(0, str(REPO))
from streaming_core.official import EXTENSION, INITIAL_CHUNK as FIRST, REFINE, VIDEO  # noqa: E402
from streaming_core.pipelines.checks import CHUNK_FRAMES, CONDITIONING_FRAMES, NEW_FRAMES_PER_CHUNK  # noqa: E402

GROUP_COLORS = {"models": "#3f789e", "generate": "#8A8", "loop": "#a1309b", "refine": "#b58b2a", "save": "#444",
                "upscale": "#88A"}
NOTE_COLOR = "#432"
WIDTH = 340
GAP, PAD, TITLE = 30, 15, 35  # between stacked nodes; group padding; group title band
NODE_TITLE = 30  # the frontend draws a node's title bar above its pos (LiteGraph.NODE_TITLE_HEIGHT)
GROUP_GAP = GAP + 2 * PAD + TITLE + NODE_TITLE  # between stacked groups


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict[str, Any]
    title: Optional[str] = None
    size: Optional[tuple[int, int]] = None
    links_in: dict[str, tuple["Node", int]] = field(default_factory=dict)
    models: list[dict] = field(default_factory=list)  # properties.models: public files this node loads


class Workflow:
    def __init__(self, definitions: dict):
        self.defs = definitions
        self.nodes: list[Node] = []
        self.notes: list[dict] = []
        self.groups: list[dict] = []

    def add(self, node_type: str, pos=None, title: Optional[str] = None, size=None, below: Optional[Node] = None,
            gap: int = None, models: Optional[list[dict]] = None, **widgets) -> Node:
        """A node at ``pos``, or stacked under ``below`` (same column, ``gap`` apart)."""
        if node_type not in self.defs:
            raise KeyError(f"unknown node type {node_type}")
        if below is not None:
            pos = (below.pos[0], self.bottom([below]) + NODE_TITLE + (GAP if gap is None else gap))
        node = Node(len(self.nodes) + len(self.notes) + 1, node_type, tuple(pos), widgets, title, size,
                    models=list(models or []))
        self.nodes.append(node)
        return node

    def connect(self, src: Node, output: str | int, dst: Node, input_name: str) -> None:
        outputs = self.defs[src.type].get("output_name") or self.defs[src.type]["output"]
        slot = output if isinstance(output, int) else list(outputs).index(output)
        dst.links_in[input_name] = (src, slot)

    def bottom(self, nodes: list[Node]) -> int:
        return max(n.pos[1] + self._size(n)[1] for n in nodes)

    def note(self, text: str, pos, size=(420, 200)) -> None:
        self.notes.append({"id": len(self.nodes) + len(self.notes) + 1, "text": text, "pos": list(pos),
                           "size": list(size)})

    def group(self, title: str, members: list[Node], color: str) -> None:
        """A titled box around ``members`` (placed already)."""
        left = min(n.pos[0] for n in members) - PAD
        top = min(n.pos[1] for n in members) - NODE_TITLE - PAD - TITLE
        right = max(n.pos[0] + self._size(n)[0] for n in members) + PAD
        bottom = max(n.pos[1] + self._size(n)[1] for n in members) + PAD
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": [left, top, right - left, bottom - top],
                            "color": color, "font_size": 24, "flags": {}})

    # -- shared layout facts -----------------------------------------------------------------------
    def _inputs(self, node_type: str):
        return wc._inputs(self.defs[node_type])

    def _slots(self, node: Node) -> list[tuple[str, Any, dict, bool]]:
        """UI input slots: every non-widget input, then widgets fed by a link (converted widgets)."""
        slots = [i for i in self._inputs(node.type) if not wc._is_widget(i[1], i[2])]
        slots += [i for i in self._inputs(node.type) if wc._is_widget(i[1], i[2]) and i[0] in node.links_in]
        return slots

    def _widget_values(self, node: Node) -> list:
        values = []
        for name, kind, options, slot in wc.widget_layout(self.defs[node.type]):
            if slot == "control":
                values.append("fixed")
            elif slot == "upload":
                values.append("image")
            elif name in node.widgets:
                values.append(node.widgets[name])
            elif "default" in options:
                values.append(options["default"])
            else:
                raise KeyError(f"{node.type}.{name} needs a value (no default)")
        return values

    def _api_widgets(self, node: Node) -> dict:
        names = [name for name, _, _, slot in wc.widget_layout(self.defs[node.type]) if slot == "value"]
        values = [v for (n, _, _, slot), v in zip(wc.widget_layout(self.defs[node.type]), self._widget_values(node))
                  if slot == "value"]
        return dict(zip(names, values))

    def _size(self, node: Node) -> list[int]:
        if node.size:
            return list(node.size)
        layout = [w for w in wc.widget_layout(self.defs[node.type]) if w[3] == "value"]
        multiline = sum(1 for _, kind, options, _ in layout if kind == "STRING" and options.get("multiline"))
        rows = max(len(self._slots(node)), len(self.defs[node.type]["output"])) + len(layout) + 3 * multiline
        return [WIDTH, 46 + 26 * rows]

    def _order(self) -> dict[int, int]:
        done: dict[int, int] = {}

        def visit(node: Node) -> None:
            if node.id in done:
                return
            for src, _ in node.links_in.values():
                visit(src)
            done[node.id] = len(done)

        for node in self.nodes:
            visit(node)
        return done

    # -- the two formats -------------------------------------------------------------------------------
    def ui(self) -> dict:
        links, ui_nodes = [], []
        order = self._order()
        out_links: dict[tuple[int, int], list[int]] = {}
        in_links: dict[tuple[int, str], int] = {}
        for node in self.nodes:
            slots = [s[0] for s in self._slots(node)]
            for name, (src, slot) in node.links_in.items():
                link_id = len(links) + 1
                link_type = (self.defs[src.type]["output"])[slot]
                links.append([link_id, src.id, slot, node.id, slots.index(name), link_type])
                out_links.setdefault((src.id, slot), []).append(link_id)
                in_links[(node.id, name)] = link_id
        for node in self.nodes:
            definition = self.defs[node.type]
            inputs = []
            for name, kind, options, required in self._slots(node):
                entry = {"name": name, "type": kind if isinstance(kind, str) else "COMBO",
                         "link": in_links.get((node.id, name))}
                if not required:
                    entry["shape"] = 7
                if wc._is_widget(kind, options):
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            names = definition.get("output_name") or definition["output"]
            outputs = [{"name": names[i], "type": kind, "links": out_links.get((node.id, i), []), "slot_index": i}
                       for i, kind in enumerate(definition["output"])]
            entry = {"id": node.id, "type": node.type, "pos": list(node.pos), "size": self._size(node), "flags": {},
                     "order": order[node.id], "mode": 0, "inputs": inputs, "outputs": outputs,
                     "properties": {"Node name for S&R": node.type}, "widgets_values": self._widget_values(node)}
            if node.models:
                entry["properties"]["models"] = node.models
            if node.title:
                entry["title"] = node.title
            ui_nodes.append(entry)
        for note in self.notes:
            ui_nodes.append({"id": note["id"], "type": "MarkdownNote", "pos": note["pos"], "size": note["size"],
                             "flags": {}, "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [],
                             "title": "Note", "properties": {}, "widgets_values": [note["text"]],
                             "color": NOTE_COLOR, "bgcolor": "#653"})
        return {"last_node_id": max(n["id"] for n in ui_nodes), "last_link_id": len(links), "nodes": ui_nodes,
                "links": links, "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 0.75, "offset": [20, 20]}}, "version": 0.4}

    def api(self) -> dict:
        graph = {}
        for node in self.nodes:
            inputs = self._api_widgets(node)
            for name, (src, slot) in node.links_in.items():
                inputs[name] = [str(src.id), slot]
            graph[str(node.id)] = {"class_type": node.type, "inputs": inputs,
                                   "_meta": {"title": node.title or node.type}}
        return graph


# ----------------------------------------------------------------------------------------------- the workflows
PROMPT = "a red panda climbing a tree in a sunny bamboo forest, highly detailed, cinematic"
OFFICIAL_FPS = VIDEO.fps  # StreamingT2V writes its videos at 8 fps (official inference.py); ModelScope/VidXTend too
LOAD_VIDEO_SIZE = (WIDTH, 520)  # room for the preview Load Video shows once a clip is picked (no overlap)

# properties.models: public files a workflow needs (the frontend lists missing ones at load; the pack
# itself never downloads). Only single files with a known public URL; folders (ModelScope UNet,
# Stream-DiffVSR, zeroscope) and ModelScope-hub files (MS-Vid2Vid-XL) are described in the notes.
HF = "https://huggingface.co"
ST2V_OFFICIAL = {"name": "streaming_t2v.ckpt", "url": f"{HF}/PAIR/StreamingT2V/resolve/main/streaming_t2v.ckpt",
                 "directory": "streamingt2v"}
VIDXTEND = {"name": "vidxtend.fp16.safetensors",
            "url": f"{HF}/benjamin-paine/vidxtend/resolve/main/vidxtend.fp16.safetensors", "directory": "streamingt2v"}
CLIP_VIT_H = {"name": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
              "url": f"{HF}/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors",
              "directory": "clip_vision"}
WAN_REPACK = f"{HF}/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
WAN_MODELS = {
    "UNETLoader": {"name": "wan2.1_t2v_1.3B_fp16.safetensors",
                   "url": f"{WAN_REPACK}/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
                   "directory": "diffusion_models"},
    "CLIPLoader": {"name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                   "url": f"{WAN_REPACK}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                   "directory": "text_encoders"},
    "VAELoader": {"name": "wan_2.1_vae.safetensors", "url": f"{WAN_REPACK}/vae/wan_2.1_vae.safetensors",
                  "directory": "vae"},
}
MODELS_NOTE = (
    "## Models (nothing is downloaded)\n"
    "Put the weights into **ComfyUI/models/streamingt2v/** (or a `streamingt2v:` entry of extra_model_paths.yaml):\n"
    "- `streaming_t2v.ckpt` (StreamingT2V; or `vidxtend.fp16.safetensors` + an image encoder)\n"
    "- `text-to-video-ms-1.7b/` (the stock ModelScope T2V diffusers folder; `unet/` is enough)\n"
    "- MS-Vid2Vid-XL: `non_ema_0035000.pth`, `open_clip_pytorch_model.bin`, `v2-1_512-ema-pruned.ckpt`\n"
    "  (or a zeroscope_v2_XL diffusers folder)\n"
    "Stream-DiffVSR: **ComfyUI/models/stream_diffvsr/Stream-DiffVSR/** (the hub folder) + "
    "`raft_large_C_T_SKHT_V2-ff5fadd5.pth` beside it.\n\n"
    "Press **R** after adding files so the dropdowns see them.")
RESUME_NOTE = (
    "## Long runs\n"
    "The Chunk Loop saves its state after every chunk (output/streamingt2v_runs/). If a run stops (Cancel, an "
    "error, a closed ComfyUI), **queue the same graph again**: it continues where it stopped. Keep every seed on "
    "**fixed** for that (a randomized seed makes a new video).\n\n"
    f"Frames: {NEW_FRAMES_PER_CHUNK} new frames per chunk; `frames` counts the whole video.")
FPS_NOTE = (f"Saved at **{OFFICIAL_FPS:g} fps**, StreamingT2V's official rate (its model has no fps input; change the "
            "`fps` input of the node that makes the video for faster or slower motion).")


COLUMNS = (20, 420, 820, 1220, 1620, 2020, 2420)
TOP = 60


def _models(wf: Workflow, x: int, y: int = TOP) -> tuple[Node, Node]:
    st2v = wf.add("ST2VLoader", (x, y), model="streaming_t2v.ckpt", dtype="auto", image_encoder="none",
                  weight_dtype="default", models=[ST2V_OFFICIAL])
    base = wf.add("ST2VModelScopeLoader", below=st2v, model="text-to-video-ms-1.7b", dtype="auto", weight_dtype="default")
    return st2v, base


def _first_chunk(wf: Workflow, st2v: Node, base: Node, pos, prompt: str = PROMPT) -> Node:
    first = wf.add("ST2VInitialChunk", pos, prompt=prompt, negative_prompt="", seed=42, steps=FIRST.steps,
                   guidance=FIRST.guidance, width=FIRST.size, height=FIRST.size, frames=CHUNK_FRAMES)
    wf.connect(st2v, 0, first, "st2v_model")
    wf.connect(base, 0, first, "base_model")
    return first


def _anchor(wf: Workflow, st2v: Node, image: Node, output=0, **where) -> Node:
    anchor = wf.add("ST2VAnchorEncoder", frame_index=0, **where)
    wf.connect(st2v, 0, anchor, "st2v_model")
    wf.connect(image, output, anchor, "image")
    return anchor


def _loop(wf: Workflow, st2v: Node, video: Node, anchor: Optional[Node], **where) -> Node:
    loop = wf.add("ST2VChunkLoop", prompts=PROMPT, negative_prompt="", frames=120, seed=42, steps=EXTENSION.steps,
                  text_guidance=EXTENSION.guidance, anchor_guidance=EXTENSION.guidance, run_name="auto",
                  keep_state=False, fps=OFFICIAL_FPS, **where)
    wf.connect(st2v, 0, loop, "st2v_model")
    wf.connect(video, 0, loop, "video")
    if anchor is not None:
        wf.connect(anchor, 0, loop, "anchor")
    return loop


def _refiner(wf: Workflow, enhancer: Node, video: Node, output=0, **where) -> Node:
    refine = wf.add("ST2VRandomizedBlendRefiner", prompt=PROMPT, negative_prompt="", mode="randomized",
                    chunk=REFINE.chunk, overlap=REFINE.overlap, strength=REFINE.strength, steps=REFINE.steps,
                    guidance=REFINE.guidance, seed=42, width=0, height=0, sde_noise="gaussian", fps=OFFICIAL_FPS,
                    **where)
    wf.connect(enhancer, 0, refine, "enhancer")
    wf.connect(video, output, refine, "video")
    return refine


def _save(wf: Workflow, images: Node, output, prefix: str, fps: float = OFFICIAL_FPS, **where) -> list[Node]:
    """Create Video + Save Video for an IMAGE output; ``fps`` is a visible widget, named in the title."""
    video = wf.add("CreateVideo", fps=fps, gap=GROUP_GAP, title=f"Create Video ({fps:g} fps, official rate)", **where)
    wf.connect(images, output, video, "images")
    save = wf.add("SaveVideo", below=video, filename_prefix=prefix, format="auto", codec="auto")
    wf.connect(video, 0, save, "video")
    return [video, save]


def _save_streamed(wf: Workflow, node: Node, prefix: str, **where) -> list[Node]:
    """Native SaveVideo straight from a node's VIDEO output (written as frames finish; never whole in memory)."""
    save = wf.add("SaveVideo", filename_prefix=prefix, format="auto", codec="auto", gap=GROUP_GAP, **where)
    wf.connect(node, "streamed_video", save, "video")
    return [save]


def text_to_long_video(defs) -> Workflow:
    wf = Workflow(defs)
    st2v, base = _models(wf, COLUMNS[0])
    enhancer = wf.add("ST2VEnhancerLoader", below=base, model="non_ema_0035000.pth", dtype="auto", weight_dtype="default")
    wf.group("1. Models", [st2v, base, enhancer], GROUP_COLORS["models"])
    wf.note(MODELS_NOTE, (COLUMNS[0], wf.bottom([enhancer]) + GROUP_GAP), (340, 400))
    first = _first_chunk(wf, st2v, base, (COLUMNS[1], TOP))
    anchor = _anchor(wf, st2v, first, below=first)
    wf.group("2. First chunk and anchor", [first, anchor], GROUP_COLORS["generate"])
    loop = _loop(wf, st2v, first, anchor, pos=(COLUMNS[2], TOP))
    wf.group(f"3. Long video ({FIRST.size} px)", [loop], GROUP_COLORS["loop"])
    refine = _refiner(wf, enhancer, loop, "streamed_video", pos=(COLUMNS[3], TOP))
    wf.group("4. Refine (720 px, randomized blending)", [refine], GROUP_COLORS["refine"])
    below = wf.bottom([loop, refine]) + GROUP_GAP
    saved = _save_streamed(wf, loop, "video/st2v_long_256", pos=(COLUMNS[2], below))
    saved += _save_streamed(wf, refine, "video/st2v_long_refined", pos=(COLUMNS[3], below))
    wf.group("5. Save", saved, GROUP_COLORS["save"])
    wf.note(RESUME_NOTE + "\n\n" + FPS_NOTE, (COLUMNS[4], TOP), (360, 340))
    return wf


def extend_any_video(defs) -> Workflow:
    wf = Workflow(defs)
    load = wf.add("LoadVideo", (COLUMNS[0], TOP), size=LOAD_VIDEO_SIZE, file="st2v_example_start.mp4")
    parts = wf.add("GetVideoComponents", below=load)
    scale = wf.add("ImageScale", below=parts, upscale_method="bicubic", width=FIRST.size, height=FIRST.size,
                   crop="center")
    wf.connect(load, 0, parts, "video")
    wf.connect(parts, "images", scale, "image")
    wf.group("1. The video to extend", [load, parts, scale], GROUP_COLORS["generate"])
    st2v = wf.add("ST2VLoader", (COLUMNS[1], TOP), model="streaming_t2v.ckpt", dtype="auto", image_encoder="none",
                  weight_dtype="default", models=[ST2V_OFFICIAL])
    anchor = _anchor(wf, st2v, scale, below=st2v)
    wf.group("2. StreamingT2V and the anchor", [st2v, anchor], GROUP_COLORS["models"])
    wf.note("## Extend any video\nLoad a clip (a real video, or the output of AnimateDiff, SVD, Wan...). Its frames "
            f"are scaled to {FIRST.size}x{FIRST.size} (sides must be multiples of 8); the last {CONDITIONING_FRAMES} "
            "condition the first new chunk, frame 0 "
            "is the appearance anchor (change frame_index, or feed any image to the anchor encoder).\n\n"
            "`frames` is the length of the whole result, the loaded frames included.\n\n"
            + RESUME_NOTE.split("\n", 1)[1], (COLUMNS[1], wf.bottom([anchor]) + GROUP_GAP), (340, 420))
    loop = _loop(wf, st2v, scale, anchor, pos=(COLUMNS[2], TOP))
    wf.connect(parts, "fps", loop, "fps")
    wf.group("3. Extend", [loop], GROUP_COLORS["loop"])
    saved = _save_streamed(wf, loop, "video/st2v_extended", below=loop)
    wf.group("4. Save (at the loaded video's frame rate)", saved, GROUP_COLORS["save"])
    return wf


def prompt_per_chunk(defs) -> Workflow:
    wf = Workflow(defs)
    st2v, base = _models(wf, COLUMNS[0])
    first = _first_chunk(wf, st2v, base, (COLUMNS[1], TOP), prompt="a red panda sitting on a branch")
    anchor = _anchor(wf, st2v, first, below=first)
    wf.group("1. Models, first chunk and anchor", [st2v, base, first, anchor], GROUP_COLORS["models"])
    wf.note(f"## A hand-built loop\nEach CAM Extender conditions on the last {CONDITIONING_FRAMES} frames of its input "
            f"and adds {NEW_FRAMES_PER_CHUNK} new "
            "ones, with its own prompt (and seed, guidance). Re-anchor by feeding another frame to an extender's "
            "anchor input; branch by wiring one video into two extenders.\n\nWith one prompt and one seed, a chain "
            "of extenders makes exactly the Chunk Loop's video. " + FPS_NOTE + "\n\n" + MODELS_NOTE,
            (COLUMNS[0], wf.bottom([first, anchor]) + GROUP_GAP), (340, 560))
    prompts = ("the red panda starts to climb up the tree", "the red panda reaches the top of the tree",
               "the red panda looks around at the bamboo forest", "the red panda yawns and falls asleep")
    video, extenders = first, []
    for i, prompt in enumerate(prompts):
        ext = wf.add("ST2VCAMExtender", (COLUMNS[2 + i], TOP), title=f"ST2V CAM Extender {i + 1}", prompt=prompt,
                     negative_prompt="", seed=42, steps=EXTENSION.steps, text_guidance=EXTENSION.guidance,
                     anchor_guidance=EXTENSION.guidance)
        wf.connect(st2v, 0, ext, "st2v_model")
        wf.connect(video, 0 if video is first else "video", ext, "video")
        wf.connect(anchor, 0, ext, "anchor")
        video = ext
        extenders.append(ext)
    wf.group("2. One CAM Extender per chunk, a prompt each", extenders, GROUP_COLORS["loop"])
    saved = _save(wf, video, "video", "video/st2v_prompt_per_chunk", below=extenders[-1])
    wf.group("3. Save", saved, GROUP_COLORS["save"])
    return wf


def refine_only(defs) -> Workflow:
    wf = Workflow(defs)
    load = wf.add("LoadVideo", (COLUMNS[0], TOP), size=LOAD_VIDEO_SIZE, file="st2v_example_start.mp4")
    enhancer = wf.add("ST2VEnhancerLoader", below=load, model="non_ema_0035000.pth", dtype="auto", weight_dtype="default")
    wf.group("1. Video and enhancer", [load, enhancer], GROUP_COLORS["models"])
    refine = _refiner(wf, enhancer, load, 0, pos=(COLUMNS[1], TOP))
    wf.group("2. Refine with randomized blending", [refine], GROUP_COLORS["refine"])
    # below the enhancer loader too: its long title widens it past its column in the browser
    saved = _save_streamed(wf, refine, "video/st2v_refined",
                           pos=(COLUMNS[1], wf.bottom([enhancer, refine]) + GROUP_GAP))
    wf.group("3. Save", saved, GROUP_COLORS["save"])
    wf.note("## Refine any video\nSDEdit at the enhancer's resolution (MS-Vid2Vid-XL: fitted into 1280x720) in "
            f"chunks of {REFINE.chunk} frames overlapping by {REFINE.overlap}. randomized: one shared noise and a "
            "new random cut inside each overlap at every step, so chunks join without seams; shared_noise and "
            "independent are the paper's baselines, to compare.\n\nstrength: how much may change "
            f"({REFINE.strength} official). The video needs at least one "
            "chunk of frames.\n\nThe video is read a few frames at a time and the result is written as frames are "
            "final (frame rate and sound kept), so any length fits in memory.\n\n" + MODELS_NOTE, (COLUMNS[2], TOP),
            (380, 600))
    return wf


def long_video_upscale(defs) -> Workflow:
    wf = Workflow(defs)
    st2v, base = _models(wf, COLUMNS[0])
    first = _first_chunk(wf, st2v, base, (COLUMNS[1], TOP))
    loop = _loop(wf, st2v, first, None, pos=(COLUMNS[2], TOP))
    wf.group(f"1. Long video ({FIRST.size} px)", [st2v, base, first, loop], GROUP_COLORS["loop"])
    wf.note(MODELS_NOTE, (COLUMNS[0], wf.bottom([first, loop]) + GROUP_GAP), (340, 400))
    sdvsr = wf.add("SDVSRLoader", (COLUMNS[3], TOP), model="Stream-DiffVSR", raft="auto", dtype="auto", weight_dtype="default")
    upscale = wf.add("SDVSRUpscale", below=sdvsr, seed=42, flow_tile="auto")
    wf.connect(sdvsr, 0, upscale, "sdvsr_model")
    wf.connect(loop, "streamed_video", upscale, "video")
    wf.group("2. Stream-DiffVSR x4 (1024 px)", [sdvsr, upscale], GROUP_COLORS["upscale"])
    saved = _save_streamed(wf, upscale, "video/st2v_long_x4", below=upscale)
    wf.group("3. Save", saved, GROUP_COLORS["save"])
    wf.note("## Causal x4 upscaling\nStream-DiffVSR upscales frame by frame, each guided by the previous output "
            "warped with optical flow. The Chunk Loop hands its video over as a file (VIDEO), the upscaler reads it a few "
            "frames at a time and writes its output as frames finish, so memory does not grow with the length. To "
            "spread a very long video over queue runs instead, split it (Image From Batch) over several Upscale "
            "nodes or queue runs and connect each one's **state** to the next one's state input: the result is the "
            "same as one pass.\n\n" + FPS_NOTE, (COLUMNS[4], TOP), (360, 320))
    return wf


VIDXTEND_NOTE = (
    "## Extend any video with VidXTend (5.1 GB instead of 25.6 GB)\n"
    "The same StreamingT2V model from the smallest download: **vidxtend.fp16.safetensors** (Hugging Face "
    "benjamin-paine/vidxtend) in models/streamingt2v/. It has no image encoder: pick the OpenCLIP ViT-H/14 one under "
    "`image_encoder`, e.g. IP-Adapter's **CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors** from models/clip_vision/, or "
    "open_clip_pytorch_model.bin (a ViT-L or bigG file does not fit). See docs/weights.md.\n\n"
    f"Load a clip; its frames are scaled to {FIRST.size}x{FIRST.size}, the last {CONDITIONING_FRAMES} condition the "
    "first new chunk, frame 0 is the "
    "appearance anchor. `frames` is the length of the whole result, the loaded frames included.\n\n"
    + RESUME_NOTE.split("\n", 1)[1])


def extend_video_vidxtend(defs) -> Workflow:
    """Extend any video from the smallest download: VidXTend + a ViT-H clip_vision image encoder."""
    wf = extend_any_video(defs)
    st2v = next(n for n in wf.nodes if n.type == "ST2VLoader")
    st2v.widgets.update(model="vidxtend.fp16.safetensors",
                        image_encoder="clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    st2v.models = [VIDXTEND, CLIP_VIT_H]
    next(n for n in wf.nodes if n.type == "SaveVideo").widgets["filename_prefix"] = "video/st2v_vidxtend_extended"
    wf.notes[0]["text"] = VIDXTEND_NOTE
    wf.groups[1]["title"] = "2. StreamingT2V (VidXTend + ViT-H)"
    return wf


WAN_NOTE = (
    "## Randomized blending for Wan 2.1\n\n**ST2V Randomized Blend (Model)** lets Wan sample 193 frames (12 s at 16 fps) "
    "with its 81-frame windows: every step runs the model on overlapping windows and, inside each 25-frame overlap, "
    "takes the frames before a random cut from the earlier window and the rest from the later one (StreamingT2V's "
    "randomized blending). One noise tensor covers the whole video.\n\nFiles (ComfyUI's usual Wan 2.1 files): "
    "`models/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors`, `models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled."
    "safetensors`, `models/vae/wan_2.1_vae.safetensors`.\n\nSaved at **16 fps**, Wan 2.1's rate.\n\nCompare: set "
    "`blend` to `pyramid` (ComfyUI's own fuse, same windows) and queue again with the same seeds.")


def wan_randomized_blend(defs) -> Workflow:
    """Wan 2.1 text to a 193-frame video through ST2V Randomized Blend (Model); node ids as the API twin's tests use."""
    wf = Workflow(defs)
    unet = wf.add("UNETLoader", (COLUMNS[0], TOP), unet_name=WAN_MODELS["UNETLoader"]["name"], weight_dtype="default",
                  models=[WAN_MODELS["UNETLoader"]])
    clip = wf.add("CLIPLoader", below=unet, clip_name=WAN_MODELS["CLIPLoader"]["name"], type="wan", device="default",
                  models=[WAN_MODELS["CLIPLoader"]])
    vae = wf.add("VAELoader", below=clip, vae_name=WAN_MODELS["VAELoader"]["name"], models=[WAN_MODELS["VAELoader"]])
    positive = wf.add("CLIPTextEncode", (COLUMNS[1], TOP), title="Positive Prompt",
                      text="A red fox trotting through fresh snow in a pine forest, steady tracking shot, soft "
                           "morning light")
    negative = wf.add("CLIPTextEncode", below=positive, title="Negative Prompt",
                      text="blurry, static, distorted, flickering, watermark, text")
    shift = wf.add("ModelSamplingSD3", (COLUMNS[2], TOP), shift=8.0)
    blend = wf.add("ST2VRandomizedBlendModel", below=shift, context_length=81, context_overlap=25, blend="randomized",
                   seed=0, temporal_compression="auto", frame_axis="auto")
    latent = wf.add("EmptyHunyuanLatentVideo", below=blend, width=832, height=480, length=193, batch_size=1)
    sampler = wf.add("KSampler", (COLUMNS[3], TOP), seed=42, steps=30, cfg=6.0, sampler_name="euler",
                     scheduler="simple", denoise=1.0)
    decode = wf.add("VAEDecode", below=sampler)
    for src, dst, name in ((clip, positive, "clip"), (clip, negative, "clip"), (unet, shift, "model"),
                           (shift, blend, "model"), (blend, sampler, "model"), (positive, sampler, "positive"),
                           (negative, sampler, "negative"), (latent, sampler, "latent_image"), (sampler, decode, "samples"),
                           (vae, decode, "vae")):
        wf.connect(src, 0, dst, name)
    wf.group("1. Wan 2.1 files", [unet, clip, vae], GROUP_COLORS["models"])
    wf.group("2. Prompts", [positive, negative], GROUP_COLORS["generate"])
    wf.group("3. Long latent, randomized blend", [shift, blend, latent], GROUP_COLORS["loop"])
    saved = _save(wf, decode, 0, "video/st2v_wan_randomized_blend", fps=16.0, below=decode)
    wf.group("4. Sample and save", [sampler, decode] + saved, GROUP_COLORS["save"])
    wf.note(WAN_NOTE, (COLUMNS[0], wf.bottom([vae, negative]) + GROUP_GAP), (740, 300))
    return wf


# API twin name -> (readable title = UI file name the template browser shows, builder)
WORKFLOWS = {
    "streamingt2v_text_to_long_video": ("Text to long video (StreamingT2V)", text_to_long_video),
    "streamingt2v_extend_any_video": ("Extend any video (StreamingT2V)", extend_any_video),
    "streamingt2v_extend_video_vidxtend": ("Extend any video, smallest download (VidXTend)", extend_video_vidxtend),
    "streamingt2v_prompt_per_chunk_extenders": ("A prompt per chunk (CAM Extenders)", prompt_per_chunk),
    "streamingt2v_refine_only": ("Refine a video (Randomized Blend Refiner)", refine_only),
    "streamingt2v_long_video_upscale": ("Long video upscaled 4x (Stream-DiffVSR)", long_video_upscale),
    "wan21_t2v_randomized_blend": ("Wan 2.1 long video (Randomized Blend)", wan_randomized_blend),
}
OUT = REPO / "example_workflows"
TWINS_FILE = OUT / "api" / "twins.json"


def _write(path: Path, data: bytes) -> None:
    """Atomically (temp file + rename): no half-written workflow under its final name."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main() -> int:
    pack = load_pack()
    definitions = wc.load_definitions(pack.NODE_CLASS_MAPPINGS)
    names = {**{k: v.get("display_name", k) for k, v in definitions.items()}, **pack.NODE_DISPLAY_NAME_MAPPINGS}
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    twins = {}
    for api_name, (title, build) in WORKFLOWS.items():
        wf = build(definitions)
        _write(OUT / f"{title}.json", (json.dumps(wf.ui(), indent=1) + "\n").encode())
        _write(OUT / "api" / f"{api_name}.json", (json.dumps(wf.api(), indent=1) + "\n").encode())
        _write(OUT / f"{title}.jpg", thumbnail(wf, title, names))
        twins[f"{title}.json"] = f"{api_name}.json"
        print(f"wrote example_workflows/{title}.json (+ .jpg) and example_workflows/api/{api_name}.json")
    _write(TWINS_FILE, (json.dumps(twins, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
