"""Peak RSS of the ComfyUI server running the long-video graphs on tiny models, short against long.

Usage: python scripts/bench_comfy_memory.py [--frames 64 640] [--graphs refine upscale] [--out FILE.json]
       (from the pack root with the test environment; needs the ComfyUI harness, see scripts/comfy_harness_util.py)

Two graphs, each on a fresh server (peak RSS is the server's VmHWM, which only grows, so one server per
measurement), on make-tiny's random models at a 320x192 output:
* refine:  text -> ST2V Initial Chunk -> ST2V Chunk Loop (N frames) -> Randomized Blend Refiner -> SaveVideo,
  the video handed over as VIDEO (a file) between nodes;
* upscale: LoadVideo (an N-frame 80x48 clip written here) -> Stream-DiffVSR Upscale -> SaveVideo.
The tree's MS-Vid2Vid-XL enhancer is rewritten with a VAE that downsamples by 8 like the real SD VAE
(``vae_levels=4``; the tests' tiny one downsamples by 2, which at 320x192 makes the tiny UNet attend over
160x96 tokens per frame: minutes per window), so the refiner's UNet sees the latent a real enhancer sees.
Prints one line per run and a JSON summary: peak RSS, seconds, seconds per frame, and the difference
between the longest and the shortest run per graph (the issue's target: at most 100 MB for 640 vs 64).
Not a test: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from comfy_harness_util import find_comfyui, run_workflows, summarize  # noqa: E402
from comfy_memory_probe import ServerMemoryProbe  # noqa: E402
from streaming_core.tiny.enhancer import MSVID2VID_DIR, write_tiny_msvid2vid  # noqa: E402
from streaming_core.tiny.tree import write_tree  # noqa: E402
from streaming_core.video_io import write_video  # noqa: E402

WIDTH, HEIGHT = 320, 192
UPSCALE_INPUT = "bench_lowres.mp4"


def refine_graph(frames: int) -> dict:
    return {
        "1": {"class_type": "ST2VLoader", "inputs": {"model": "streaming_t2v.ckpt", "dtype": "auto", "image_encoder": "none"}},
        "2": {"class_type": "ST2VModelScopeLoader", "inputs": {"model": "text-to-video-ms-1.7b", "dtype": "auto"}},
        "3": {"class_type": "ST2VInitialChunk", "inputs": {
            "st2v_model": ["1", 0], "base_model": ["2", 0], "prompt": "a red panda", "negative_prompt": "", "seed": 1,
            "steps": 2, "guidance": 9.0, "width": WIDTH, "height": HEIGHT, "frames": 16}},
        "4": {"class_type": "ST2VChunkLoop", "inputs": {
            "st2v_model": ["1", 0], "video": ["3", 0], "prompts": "a red panda", "negative_prompt": "", "frames": frames,
            "seed": 1, "steps": 2, "text_guidance": 7.5, "anchor_guidance": 7.5, "run_name": "", "keep_state": False,
            "fps": 8.0}},
        "5": {"class_type": "ST2VEnhancerLoader", "inputs": {"model": "non_ema_0035000.pth", "dtype": "auto"}},
        "6": {"class_type": "ST2VRandomizedBlendRefiner", "inputs": {
            "enhancer": ["5", 0], "video": ["4", 1], "prompt": "a red panda", "negative_prompt": "", "mode": "randomized",
            "chunk": 8, "overlap": 4, "strength": 0.6, "steps": 2, "guidance": 7.5, "seed": 1, "width": WIDTH,
            "height": HEIGHT, "sde_noise": "gaussian", "fps": 8.0}},
        "7": {"class_type": "SaveVideo", "inputs": {"video": ["6", 1], "filename_prefix": "bench/refined",
                                                    "format": "auto", "codec": "auto"}},
    }


def upscale_graph(video_file: str, prefix: str = "bench/upscaled") -> dict:
    """LoadVideo (a file in ComfyUI's input folder) -> Stream-DiffVSR Upscale -> SaveVideo, VIDEO throughout."""
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": video_file}},
        "2": {"class_type": "SDVSRLoader", "inputs": {"model": "Stream-DiffVSR", "raft": "auto", "dtype": "auto"}},
        "3": {"class_type": "SDVSRUpscale", "inputs": {"sdvsr_model": ["2", 0], "video": ["1", 0], "seed": 1,
                                                       "flow_tile": "auto", "fps": 8.0}},
        "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 2], "filename_prefix": prefix,
                                                    "format": "auto", "codec": "auto"}},
    }


def drifting_clip(path: Path, frames: int, width: int = WIDTH // 4, height: int = HEIGHT // 4, seed: int = 0) -> Path:
    """A random picture brightening over ``frames`` frames, written as an 8 fps mp4 (the upscaler's input)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, height, width, 3, generator=g)
    drift = torch.linspace(0, 0.3, frames).view(-1, 1, 1, 1)
    return write_video(path, (base + drift).clamp(0, 1), fps=8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[64, 640])
    parser.add_argument("--graphs", nargs="+", default=["refine", "upscale"], choices=["refine", "upscale"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=3000)
    args = parser.parse_args()
    if find_comfyui() is None:
        print("error: no ComfyUI (set COMFYUI_PATH or set up ~/comfy-harness)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="st2v_bench_comfy_"))
    models = work / "models"
    write_tree(models, log=lambda line: None)
    write_tiny_msvid2vid(models / MSVID2VID_DIR, vae_levels=4)  # see the top: the real VAE's / 8
    rows = []
    for graph in args.graphs:
        for frames in args.frames:
            run_dir = work / f"{graph}_{frames}"
            clip_name = f"{frames}_{UPSCALE_INPUT}"
            inputs = (drifting_clip(work / clip_name, frames),) if graph == "upscale" else ()
            probe = ServerMemoryProbe(reset_per_prompt=False)  # one server per run: its whole peak
            start = time.perf_counter()
            workflow = refine_graph(frames) if graph == "refine" else upscale_graph(clip_name)
            result = run_workflows({graph: workflow}, run_dir, models_dir=models, inputs=inputs,
                                   timeout=args.timeout, watch=probe)
            record = result.workflow(graph)
            seconds = record.get("server_execution_s") or (time.perf_counter() - start)
            row = {"graph": graph, "frames": frames, "status": record["status"], "peak_rss_mb": probe.server_peak_mb,
                   "seconds": seconds, "seconds_per_frame": seconds / frames}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if record["status"] != "success":
                print(summarize(result), file=sys.stderr)
    summary = {"size": f"{WIDTH}x{HEIGHT}", "runs": rows, "growth_mb": {}}
    for graph in args.graphs:
        runs = sorted((r for r in rows if r["graph"] == graph), key=lambda r: r["frames"])
        if len(runs) >= 2:
            summary["growth_mb"][graph] = runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
