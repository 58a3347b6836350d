"""``python -m streaming_core inspect FILE_OR_FOLDER``: which weights a file or folder holds.

Answers "which file is this and where does it go?" before a multi-GB load fails: the detected layout,
its parts with parameter counts and dtypes, and notes (missing parts, which CLIP tower, what to add).
Reads headers / memory-mapped pickles only, so it takes about a second even on the 25 GB checkpoint.
"""

from __future__ import annotations

import json

from ..checkpoints.inspect import inspect_path


def add_arguments(parser) -> None:
    parser.add_argument("path", help="a weight file (.safetensors/.ckpt/.pt/.pth/.bin) or a model folder")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    result = inspect_path(args.path)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print("\n".join(result.lines()))
    return 0
