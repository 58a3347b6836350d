"""The pack as a user meets it: the real ComfyUI frontend in a headless Chromium, driven by Playwright.

One ComfyUI server (headless, CPU, tiny random models, ``--preview-method latent2rgb``) serves the real
frontend (comfyui-frontend-package); one browser page then checks:
* the template browser lists every example workflow of the pack with its thumbnail;
* every workflow loads without the missing-nodes dialog, and no two nodes overlap once the Load Video
  previews have loaded (they grow the node);
* a tiny Extend workflow queued with the Run button shows the Chunk Loop's per-step progress and a
  latent preview before its first chunk ends (not only a frame strip at chunk ends).

Skipped (with the reason) where ComfyUI, Playwright or Chromium is missing. Playwright is a test-only
dependency (requirements-test.txt); the browser is the system's (Debian: apt-get install chromium),
never downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from comfy_harness_util import REPO, RUN_WORKFLOW, SINGLE_THREAD, comfyui, require_comfyui, write_model_paths
from tiny_models_tree import tiny_models_dir

pytestmark = comfyui

EXAMPLES = REPO / "example_workflows"
UI_FILES = sorted(EXAMPLES.glob("*.json"))
START_VIDEO = "st2v_example_start.mp4"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
LOOP_STEPS = 3  # steps per chunk of the queued tiny run
PACK_FOLDER = "streaming-long-video"  # the folder name a clone gets; the template browser shows it as the category
MISSING_NODES_TEXT = ("Some Nodes Are Missing", "the following node types were not found")


def _shot(page, tmp_path: Path, name: str) -> None:
    """A screenshot for whoever reads the test's output ($ST2V_BROWSER_ARTIFACTS keeps them)."""
    folder = Path(os.environ.get("ST2V_BROWSER_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def _close_dialogs(page) -> None:
    for _ in range(5):
        if not page.locator(".p-dialog-mask").count():
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    assert not page.locator(".p-dialog-mask").count(), "a dialog does not close"


def _playwright():
    try:
        from playwright.sync_api import sync_playwright  # test-only dependency, imported only here
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -r requirements-test.txt)")
    if not CHROMIUM:
        pytest.skip("no Chromium browser (Debian: apt-get install chromium; or set CHROMIUM)")
    return sync_playwright


def _harness():
    spec = importlib.util.spec_from_file_location("comfy_harness_run_workflow", RUN_WORKFLOW)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sync_playwright = _playwright()
    install = require_comfyui()
    harness = _harness()
    models = tiny_models_dir(tmp_path_factory)
    work = tmp_path_factory.mktemp("browser_harness")
    yaml = write_model_paths(models, work / "extra_model_paths.yaml")
    saved_env = {k: os.environ.get(k) for k in SINGLE_THREAD}
    os.environ.update(SINGLE_THREAD)
    # A base directory of our own holds custom_nodes/ with only this pack (linked under the name a user's clone
    # has), so the shared ComfyUI tree is not touched and no other harness run has to wait for this one.
    base = work / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
    try:
        srv = harness.Server(install.python, str(install.root), str(work), harness.free_port(), str(work / "output"),
                             whitelist=[PACK_FOLDER],
                             extra_args=["--base-directory", str(base), "--extra-model-paths-config", str(yaml),
                                         "--preview-method", "latent2rgb"])
        _write_start_video(Path(srv.dirs["input"]) / START_VIDEO)
        srv.start()
        try:
            srv.wait_ready(240)
            yield {"url": f"http://127.0.0.1:{srv.port}", "module": PACK_FOLDER, "server": srv,
                   "playwright": sync_playwright}
        finally:
            srv.stop()
            print("--- ComfyUI server log (tail) ---\n" + srv.log_text()[-3000:])
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _write_start_video(path: Path) -> None:
    from streaming_core.video_io import write_video

    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(1, 64, 96, 3, generator=g) + torch.linspace(0, 0.4, 12).view(-1, 1, 1, 1)).clamp(0, 1)
    write_video(path, frames, fps=8)


@pytest.fixture(scope="module")
def page(server):
    with server["playwright"]() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1600, "height": 1000})
        console, responses = [], []
        pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        pg.on("response", lambda r: responses.append((r.url, r.status, r.headers.get("content-type", ""))))
        pg.goto(server["url"], wait_until="domcontentloaded", timeout=120_000)
        pg.wait_for_function("() => window.app && window.app.graph && window.app.extensionManager", timeout=180_000)
        pg.wait_for_timeout(2000)
        _close_dialogs(pg)  # a first visit opens the "Get Started" template browser
        pg.console_messages, pg.responses = console, responses
        yield pg
        browser.close()


# -- the template browser ------------------------------------------------------------------------------
def test_templates_are_listed_with_thumbnails(page, server, tmp_path):
    module = server["module"]
    listed = page.evaluate("async () => (await (await fetch('api/workflow_templates')).json())")
    assert sorted(listed.get(module, [])) == sorted(p.stem for p in UI_FILES), listed
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(module, exact=True).first.click(timeout=60_000)
    displayed = {}  # template title -> (width, height) of the loaded image in its card
    for path in UI_FILES:  # each card scrolled into view: the browser loads thumbnails lazily, as a user scrolls
        card_title = page.get_by_text(path.stem, exact=True).first
        card_title.wait_for(timeout=60_000)
        card_title.scroll_into_view_if_needed()
        image = card_title.locator("xpath=ancestor::*[.//img][1]//img").first
        image.wait_for(timeout=30_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                               timeout=30_000)
        displayed[path.stem] = tuple(image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]"))
    print("thumbnail shown in each template card:", json.dumps(displayed, sort_keys=True))
    page.wait_for_timeout(1500)
    _shot(page, tmp_path, "templates")
    # the frontend fetched <name>.jpg for every template, and shows each (as a blob image) at its full size
    from urllib.parse import unquote

    fetched = {Path(unquote(url.split("?")[0])).stem: (status, kind) for url, status, kind in page.responses
               if f"/workflow_templates/{module}/" in unquote(url) and url.split("?")[0].endswith(".jpg")}
    print("thumbnails fetched by the template browser:", json.dumps(fetched, sort_keys=True))
    assert fetched == {p.stem: (200, "image/jpeg") for p in UI_FILES}
    assert displayed == {p.stem: (768, 576) for p in UI_FILES}
    _close_dialogs(page)


# -- every workflow loads, nothing overlaps once previews are in ----------------------------------------
BOXES_JS = """() => {
    const th = LiteGraph.NODE_TITLE_HEIGHT;
    return app.graph._nodes.map(n => ({id: n.id, type: n.type, title: n.title,
        box: [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th]}));
}"""
# the title band of each group (its name), which a node must not cover
GROUP_TITLES_JS = """() => app.graph._groups.map(g => ({title: g.title,
    box: [g.pos[0], g.pos[1], g.size[0], g.titleHeight ?? LiteGraph.NODE_TITLE_HEIGHT]}))"""


def _hit(a, b) -> bool:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a["box"], b["box"]
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _overlaps(boxes):
    return [(a["title"], b["title"]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if _hit(a, b)]


def _settled_boxes(page, timeout: float = 30.0):
    """Node boxes once they stop changing (video previews load asynchronously and grow their node)."""
    deadline, last, same = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        boxes = page.evaluate(BOXES_JS)
        same = same + 1 if boxes == last else 0
        if same >= 4:
            return boxes
        last = boxes
        page.wait_for_timeout(500)
    return last


@pytest.mark.parametrize("path", UI_FILES, ids=[p.stem for p in UI_FILES])
def test_workflow_loads_without_missing_nodes_and_without_overlap(page, path, tmp_path):
    workflow = json.loads(path.read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf, true, true, null); }", workflow)
    page.wait_for_timeout(1000)
    text = page.evaluate("() => document.body.innerText")
    assert not any(t in text for t in MISSING_NODES_TEXT), f"missing-nodes dialog for {path.name}"
    unknown = page.evaluate("() => app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert unknown == []
    uses_video = any(n["type"] == "LoadVideo" for n in workflow["nodes"])
    if uses_video:  # wait until the preview has really loaded (it is what grows the node)
        page.wait_for_function("() => [...document.querySelectorAll('video')].some(v => v.readyState >= 1)",
                               timeout=60_000)
    boxes = _settled_boxes(page)
    _shot(page, tmp_path, "workflow_" + path.stem.replace(" ", "_"))
    assert len(boxes) == len(workflow["nodes"])
    assert _overlaps(boxes) == [], f"{path.name}: overlapping nodes"
    titles = page.evaluate(GROUP_TITLES_JS)
    assert [(g["title"], n["title"]) for g in titles for n in boxes if _hit(g, n)] == [], "a node covers a group's title"
    if uses_video:
        load = next(b for b in boxes if b["type"] == "LoadVideo")
        print(f"{path.stem}: Load Video box after its preview loaded: {load['box']}")
    _close_dialogs(page)


# -- a tiny run queued from the UI ---------------------------------------------------------------------
LISTEN_JS = """() => {
    window.__st2v = [];
    const t0 = performance.now();
    let seq = 0;  // arrival order (image sizes are decoded asynchronously)
    const note = (kind, detail, at = seq++) => window.__st2v.push({kind, seq: at, t: performance.now() - t0, ...detail});
    app.api.addEventListener('progress', e => note('progress', {node: String(e.detail.node), value: e.detail.value,
                                                           max: e.detail.max}));
    app.api.addEventListener('b_preview_with_metadata', e => {
        const at = seq++, node = String(e.detail.displayNodeId ?? e.detail.nodeId);
        createImageBitmap(e.detail.blob).then(b => note('preview', {node, width: b.width, height: b.height}, at));
    });
    app.api.addEventListener('executing', e => note('executing', {node: String(e.detail)}));
    app.api.addEventListener('execution_success', e => note('done', {}));
    app.api.addEventListener('execution_error', e => note('error', {message: e.detail.exception_message}));
}"""

TINY_JS = """(steps) => {
    const set = (type, name, value) => app.graph._nodes.filter(n => n.type === type).forEach(n => {
        const w = n.widgets.find(w => w.name === name); if (!w) throw new Error(type + '.' + name); w.value = value; });
    set('ImageScale', 'width', 64); set('ImageScale', 'height', 64);
    set('ST2VChunkLoop', 'steps', steps); set('ST2VChunkLoop', 'frames', 28); set('ST2VChunkLoop', 'run_name', '');
    return app.graph._nodes.find(n => n.type === 'ST2VChunkLoop').id;
}"""


def test_a_queued_run_shows_per_step_progress_and_a_preview_before_the_first_chunk_ends(page, tmp_path):
    workflow = json.loads((EXAMPLES / "Extend any video (StreamingT2V).json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf, true, true, null); }", workflow)
    page.wait_for_timeout(1000)
    _close_dialogs(page)
    loop_id = str(page.evaluate(TINY_JS, LOOP_STEPS))
    page.evaluate(LISTEN_JS)
    run = page.locator("[data-testid='queue-button']")
    _shot(page, tmp_path, "before_run")
    if run.count():
        run.first.click(timeout=20_000)
        how = "the Run button"
    else:  # the Run button's own command, where a frontend names the button otherwise
        page.evaluate("() => app.extensionManager.command.execute('Comfy.QueuePrompt')")
        how = "the Comfy.QueuePrompt command"
    page.wait_for_function("() => window.__st2v.some(e => e.kind === 'done' || e.kind === 'error')", timeout=400_000)
    _shot(page, tmp_path, "run")
    page.wait_for_timeout(500)  # the last preview sizes are decoded
    events = sorted(page.evaluate("() => window.__st2v"), key=lambda e: e["seq"])
    errors = [e for e in events if e["kind"] == "error"]
    assert not errors, errors
    progress = [(e["value"], e["max"]) for e in events if e["kind"] == "progress" and e["node"] == loop_id]
    print(f"queued with {how}; Chunk Loop progress: {progress}")
    # per-step progress: every denoising step of both chunks, in order
    assert [v for v, _ in progress] == list(range(1, 2 * LOOP_STEPS + 1))
    # The Chunk Loop's previews in arrival order (ComfyUI scales each to --preview-size): the x0 estimate of
    # each step, one square 64x64 frame through ComfyUI's latent2rgb, and at each chunk's end a strip of its
    # newest 4 frames side by side (4:1).
    previews = [(e["width"], e["height"]) for e in events if e["kind"] == "preview" and e["node"] == loop_id]
    print(f"Chunk Loop previews in arrival order (width, height): {previews}")
    kinds = ["strip" if w == 4 * h else "latent" if w == h else f"{w}x{h}" for w, h in previews]
    assert kinds == (["latent"] * (LOOP_STEPS - 1) + ["strip"]) * 2, kinds
