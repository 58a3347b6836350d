"""``convert IN OUT.safetensors``: a pickle checkpoint (.ckpt/.pth/.bin) to safetensors, once.

Reads IN safely (``torch.load(weights_only=True)``, memory-mapped; Lightning wrappers unwrapped),
writes OUT tensor by tensor under a temporary name, never touches IN.
"""

from __future__ import annotations

from ..checkpoints.convert import DTYPE_CHOICES, convert_to_safetensors


def add_arguments(parser) -> None:
    parser.add_argument("input", help="checkpoint to read (.ckpt, .pth, .pt, .bin or .safetensors)")
    parser.add_argument("output", help="safetensors file to write (must not be the input)")
    parser.add_argument("--dtype", choices=sorted(DTYPE_CHOICES), default="keep",
                        help="store floating tensors in this precision (default: keep the checkpoint's)")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it already exists")


def run(args) -> int:
    summary = convert_to_safetensors(args.input, args.output, DTYPE_CHOICES[args.dtype], overwrite=args.force)
    layout = {"streamingt2v": "StreamingT2V official layout"}.get(summary["layout"], summary["layout"])
    print(f"wrote {summary['path']}: {summary['tensors']} tensors, {summary['bytes'] / 2**20:.1f} MiB ({layout})")
    return 0
