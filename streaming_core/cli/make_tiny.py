"""``make-tiny``: tiny random weights for every model, under the real folder and file names.

    python -m streaming_core make-tiny --models-dir /tmp/tiny_models

Point ComfyUI at the folder (the command prints the extra_model_paths.yaml lines, or writes them with
``--yaml FILE``) and every example workflow runs unchanged, in seconds on a CPU at small sizes and few
steps. The weights are random: the videos are noise; they show that every path works, not what the
models make.
"""

from __future__ import annotations

import sys

from .. import validation
from ..state_files import atomic_path
from ..tiny.tree import TINY_MODELS, extra_model_paths_yaml, write_tree


def add_arguments(parser) -> None:
    parser.add_argument("--models-dir", required=True, metavar="DIR",
                        help="where to write (DIR/streamingt2v/..., DIR/stream_diffvsr/...)")
    parser.add_argument("--force", action="store_true", help="rewrite models whose files already exist")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="write only the models whose name contains NAME (repeatable), e.g. --only Stream-DiffVSR")
    parser.add_argument("--yaml", metavar="FILE", help="also write an extra_model_paths.yaml pointing at DIR")
    parser.add_argument("--list", action="store_true", help="list the models and their files, write nothing")


def run(args) -> int:
    if args.list:
        for model in TINY_MODELS:
            print(f"{model.name}:")
            for path in model.paths:
                print(f"  {path}")
        return 0
    models_dir = validation.output_path(args.models_dir, what="models folder", folder=True)
    if args.yaml:
        validation.output_path(args.yaml, what="yaml file")
    write_tree(models_dir, force=args.force, only=args.only)
    lines = extra_model_paths_yaml(models_dir)
    if args.yaml:
        with atomic_path(args.yaml) as tmp:
            tmp.write_text(lines)
        print(f"wrote    {args.yaml}")
    print("\nComfyUI finds these models with these lines in its extra_model_paths.yaml "
          "(or pass the file with --extra-model-paths-config):\n" + lines, file=sys.stderr)
    return 0
