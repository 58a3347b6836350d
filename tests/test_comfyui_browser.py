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
MISSING_NODES_TEXT = ("Some Nodes Are Missing", "the following node types were not found")


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
    try:
        with harness.PackLink(str(install.root), str(REPO)) as link:
            srv = harness.Server(install.python, str(install.root), str(work), harness.free_port(),
                                 str(work / "output"), whitelist=[link.name],
                                 extra_args=["--extra-model-paths-config", str(yaml), "--preview-method", "latent2rgb"])
            _write_start_video(Path(srv.dirs["input"]) / START_VIDEO)
            srv.start()
            try:
                srv.wait_ready(240)
                yield {"url": f"http://127.0.0.1:{srv.port}", "module": link.module_name, "server": srv,
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
        console = []
        pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        pg.goto(server["url"], wait_until="domcontentloaded", timeout=120_000)
        pg.wait_for_function("() => window.app && window.app.graph && window.app.extensionManager", timeout=180_000)
        pg.wait_for_timeout(2000)
        pg.console_messages = console
        yield pg
        browser.close()


# -- the template browser ------------------------------------------------------------------------------
def test_templates_are_listed_with_thumbnails(page, server, tmp_path):
    module = server["module"]
    listed = page.evaluate("async () => (await (await fetch('api/workflow_templates')).json())")
    assert sorted(listed.get(module, [])) == sorted(p.stem for p in UI_FILES), listed
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(module, exact=True).first.click(timeout=60_000)
    for path in UI_FILES:
        page.get_by_text(path.stem, exact=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    images = page.evaluate("""(module) => [...document.querySelectorAll('img')]
        .filter(i => i.src.includes('/workflow_templates/' + module + '/'))
        .map(i => ({src: decodeURIComponent(i.src), loaded: i.complete && i.naturalWidth > 0,
                    width: i.naturalWidth, height: i.naturalHeight}))""", module)
    page.screenshot(path=str(tmp_path / "templates.png"))
    shown = {Path(i["src"].split("?")[0]).stem: i for i in images}
    print("template thumbnails:", json.dumps(sorted((k, v["width"], v["height"], v["loaded"]) for k, v in shown.items())))
    assert sorted(shown) == sorted(p.stem for p in UI_FILES)
    assert all(i["loaded"] for i in shown.values()), images
    page.keyboard.press("Escape")


# -- every workflow loads, nothing overlaps once previews are in ----------------------------------------
BOXES_JS = """() => {
    const th = LiteGraph.NODE_TITLE_HEIGHT;
    return app.graph._nodes.map(n => ({id: n.id, type: n.type, title: n.title,
        box: [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th]}));
}"""


def _overlaps(boxes):
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = a["box"], b["box"]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                found.append((a["title"], b["title"]))
    return found


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
    page.screenshot(path=str(tmp_path / "workflow.png"))
    assert len(boxes) == len(workflow["nodes"])
    assert _overlaps(boxes) == [], f"{path.name}: overlapping nodes"
    if uses_video:
        load = next(b for b in boxes if b["type"] == "LoadVideo")
        print(f"{path.stem}: Load Video box after its preview loaded: {load['box']}")
    for dialog_close in page.locator(".p-dialog-close-button").all():
        dialog_close.click()


# -- a tiny run queued from the UI ---------------------------------------------------------------------
LISTEN_JS = """() => {
    window.__st2v = [];
    const t0 = performance.now();
    const note = (kind, detail) => window.__st2v.push({kind, t: performance.now() - t0, ...detail});
    api.addEventListener('progress', e => note('progress', {node: String(e.detail.node), value: e.detail.value,
                                                           max: e.detail.max}));
    api.addEventListener('b_preview', e => note('preview', {size: e.detail.size}));
    api.addEventListener('b_preview_with_metadata', e => note('preview_meta', {node: String(e.detail.nodeId ?? e.detail.displayNodeId)}));
    api.addEventListener('executing', e => note('executing', {node: String(e.detail)}));
    api.addEventListener('execution_success', e => note('done', {}));
    api.addEventListener('execution_error', e => note('error', {message: e.detail.exception_message}));
}"""

TINY_JS = """(steps) => {
    const set = (type, name, value) => app.graph._nodes.filter(n => n.type === type).forEach(n => {
        const w = n.widgets.find(w => w.name === name); if (!w) throw new Error(type + '.' + name); w.value = value; });
    set('ImageScale', 'width', 64); set('ImageScale', 'height', 64);
    set('ST2VChunkLoop', 'steps', steps); set('ST2VChunkLoop', 'frames', 20); set('ST2VChunkLoop', 'run_name', '');
    return app.graph._nodes.find(n => n.type === 'ST2VChunkLoop').id;
}"""


def test_a_queued_run_shows_per_step_progress_and_a_preview_before_the_first_chunk_ends(page, tmp_path):
    workflow = json.loads((EXAMPLES / "Extend any video (StreamingT2V).json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf, true, true, null); }", workflow)
    page.wait_for_timeout(1000)
    loop_id = str(page.evaluate(TINY_JS, LOOP_STEPS))
    page.evaluate(LISTEN_JS)
    run = page.locator("[data-testid='queue-button']")
    if run.count():
        run.first.click()
        how = "the Run button"
    else:  # the Run button's own command, where a frontend names the button otherwise
        page.evaluate("() => app.extensionManager.command.execute('Comfy.QueuePrompt')")
        how = "the Comfy.QueuePrompt command"
    page.wait_for_function("() => window.__st2v.some(e => e.kind === 'done' || e.kind === 'error')", timeout=400_000)
    page.screenshot(path=str(tmp_path / "run.png"))
    events = page.evaluate("() => window.__st2v")
    errors = [e for e in events if e["kind"] == "error"]
    assert not errors, errors
    loop = [e for e in events if e.get("node") == loop_id or e["kind"] in ("preview", "preview_meta")]
    progress = [(e["value"], e["max"]) for e in events if e["kind"] == "progress" and e["node"] == loop_id]
    print(f"queued with {how}; Chunk Loop progress: {progress}")
    # per-step progress: every denoising step of both chunks, in order
    assert [v for v, _ in progress] == list(range(1, 2 * LOOP_STEPS + 1))
    # a preview arrives while the first chunk is still denoising (after step 1 or 2 of 3)
    last_value, early = 0, []
    for e in loop:
        if e["kind"] == "progress":
            last_value = e["value"]
        elif e["kind"] in ("preview", "preview_meta") and e.get("node", loop_id) == loop_id and last_value < LOOP_STEPS:
            early.append((e["kind"], last_value, round(e["t"])))
    print(f"previews before the first chunk ended (kind, after step, ms): {early}")
    assert early, "no preview before the first chunk ended"
