"""Peak RSS, seconds per frame and the first frame written of the CLI ``refine`` and ``upscale`` on the
tiny random-weight models, at two lengths: memory that does not grow with the length, shown.

    python scripts/bench_stream_memory.py --frames 64 640 --json bench.json

Every measurement is a fresh process (its own ``ru_maxrss``) that runs the CLI in-process with two
counters attached: frames read from the input, and the input frames read when the first output frame
was written. Output size W x H (default 320x192): refine fits a W/2 x H/2 input into a W x H canvas (no padding);
upscale takes W/4 x H/4 (x4). The weights are random: this measures memory and time, not quality.
The refine enhancer is the tiny MS-Vid2Vid-XL with a VAE that downsamples by 8 like the real SD VAE
(``vae_levels=4``), so the UNet sees the latent size a real enhancer sees at W x H (40x24 at 320x192):
the tests' tiny VAE downsamples by 2, which at 320x192 makes the tiny UNet attend over 160x96 tokens
per frame (44 s for one 4-frame call here, 80% of it spatial attention).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DRIVER = r"""
import json, resource, sys, time
import streaming_core.video_io as vio
import streaming_core.pipelines.refine as refine_module
from streaming_core.cli import main

read = [0]
first = []
real_iter, real_write = vio.iter_video_frames, vio.VideoWriter.write

def counting_iter(*a, **k):
    for frame in real_iter(*a, **k):
        read[0] += 1
        yield frame

def noting_write(self, frames):
    if not first:
        first.append(read[0])
    real_write(self, frames)

vio.iter_video_frames = refine_module.iter_video_frames = counting_iter
vio.VideoWriter.write = noting_write
start = time.perf_counter()
rc = main(json.loads(sys.argv[1]))
seconds = time.perf_counter() - start
print("RESULT " + json.dumps({"rc": rc, "seconds": seconds, "first_written_after_read": first[0] if first else None,
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_input(path: Path, frames: int, width: int, height: int) -> None:
    """A moving gradient with a square (some structure, cheap to encode), streamed to the file."""
    import torch

    from streaming_core.video_io import VideoWriter

    ys = torch.linspace(0, 1, height).view(-1, 1, 1)
    xs = torch.linspace(0, 1, width).view(1, -1, 1)
    colour = torch.tensor([0.8, 0.4, 0.2])
    with VideoWriter(path, 8) as writer:
        for a in range(0, frames, 16):
            batch = []
            for f in range(a, min(frames, a + 16)):
                frame = (0.5 + 0.5 * torch.sin(6 * xs + f / 8) * torch.cos(4 * ys)) * colour
                x0 = (f * 2) % max(1, width - height // 3)
                frame[height // 3: 2 * height // 3, x0:x0 + height // 3] = 1
                batch.append(frame)
            writer.write(torch.stack(batch))


def measure(args_list: list[str], pythonpath: Path, threads=None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args_list)], env=env, capture_output=True,
                          text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[64, 640])
    parser.add_argument("--stages", nargs="+", default=["refine", "upscale"], choices=["refine", "upscale"])
    parser.add_argument("--steps", type=int, default=3, help="refine solver steps (default 3)")
    parser.add_argument("--upscale-steps", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=[320, 192], metavar=("W", "H"),
                        help="output size (default 320 192); refine reads W/2 x H/2, upscale W/4 x H/4")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the measured process")
    parser.add_argument("--models-dir", default=None, help="tiny models (written here if missing; default: a temp dir)")
    parser.add_argument("--code", default=str(ROOT), help="the checkout to measure (PYTHONPATH), e.g. another branch")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from streaming_core.tiny.enhancer import write_tiny_msvid2vid
    from streaming_core.tiny.tree import SDVSR_DIR, SDVSR_NAME, write_tree

    work = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    models = Path(args.models_dir or work / "models")
    write_tree(models, only=["MS-Vid2Vid-XL", "Stream-DiffVSR"])
    enhancer = models / "bench_enhancer_vae8"
    if not (enhancer / "non_ema_0035000.pth").exists():
        write_tiny_msvid2vid(enhancer, vae_levels=4)
    width, height = args.size
    results = []
    for stage in args.stages:
        for frames in args.frames:
            out = work / f"{stage}_{frames}.mp4"
            if stage == "refine":
                src = work / f"in_refine_{frames}.mp4"
                make_input(src, frames, width // 2, height // 2)
                cli = ["refine", "--enhancer", str(enhancer), "--video", str(src), "--prompt", "a car",
                       "--out", str(out), "--steps", str(args.steps), "--width", str(width), "--height", str(height),
                       "--no-pad", "--device", "cpu"]
            else:
                src = work / f"in_upscale_{frames}.mp4"
                make_input(src, frames, width // 4, height // 4)
                sdvsr = models / SDVSR_DIR / SDVSR_NAME
                cli = ["upscale", "--sdvsr", str(sdvsr), "--video", str(src), "--out", str(out),
                       "--steps", str(args.upscale_steps), "--device", "cpu"]
            r = measure(cli, Path(args.code), args.threads)
            r.update(stage=stage, frames=frames, seconds_per_frame=r["seconds"] / frames)
            results.append(r)
            print(json.dumps(r), flush=True)
            out.unlink(missing_ok=True)
            src.unlink(missing_ok=True)
    print("\n| stage | frames | peak RSS (MB) | s/frame | first frame written after reading |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['stage']} | {r['frames']} | {r['peak_rss_mb']:.0f} | {r['seconds_per_frame']:.3f} | "
              f"{r['first_written_after_read']} of {r['frames']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
