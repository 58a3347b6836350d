"""Command-line entry point: ``python -m streaming_core <command> ...``, or ``streaming-long-video
<command> ...`` once the core is installed (``pip install .``; see pyproject's ``[project.scripts]``).

Each command lives in its own module under ``streaming_core.cli`` exposing
``add_arguments(parser)`` and ``run(args) -> int``; only the chosen command's module is imported,
so ``--help`` stays fast and one broken optional dependency cannot take every command down.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("streaming_core.cli.demo", "run the whole long-video pipeline on tiny random models (no weights needed)"),
    "generate": ("streaming_core.cli.generate", "text -> long video with StreamingT2V (initial chunk + CAM extension)"),
    "refine": ("streaming_core.cli.refine", "enhance a long video with the randomized-blend refiner"),
    "upscale": ("streaming_core.cli.upscale", "causal x4 video super-resolution with Stream-DiffVSR"),
    "evaluate": ("streaming_core.cli.evaluate", "MAWE, SCuts, CLIP score and seam measures of videos, with a table, JSON and a plot"),
    "convert": ("streaming_core.cli.convert", "convert a pickle checkpoint (.ckpt/.pth/.bin) to safetensors once"),
    "inspect": ("streaming_core.cli.inspect", "print the detected layout and components of a weight file or folder"),
    "check-keys": ("streaming_core.cli.check_keys", "build a full-size model on the meta device and compare with an official key list"),
    "verify-fixture": ("streaming_core.cli.verify_fixture", "run every case of a parity fixture directory against our implementation"),
    "make-tiny": ("streaming_core.cli.make_tiny", "write tiny random weights under the real folder and file names"),
    "bench": ("streaming_core.cli.bench", "seconds per frame and peak memory for each stage"),
}


CONSOLE_COMMAND = "streaming-long-video"  # pyproject's [project.scripts] name


def program_name() -> str:
    """How the user called us: the installed console command, else ``python -m streaming_core``."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return CONSOLE_COMMAND if called == CONSOLE_COMMAND else "python -m streaming_core"


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default: appended as "(default: X)" unless the help text already
    says it or there is none to show (a flag, or None: the help then says what happens instead)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower()
                or action.default in (None, False, argparse.SUPPRESS) or action.default == []):
            return text
        return super()._get_help_string(action)


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="StreamingT2V long-video generation and Stream-DiffVSR upscaling.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="command", help="one of the commands below")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_level_parser()
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0 if argv else 2
        parser.parse_args(argv[:1])  # prints the "invalid choice" error and exits 2
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"{program_name()} {name}", description=help_,
                                     formatter_class=HelpWithDefaults)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a path through a file: one line, not a traceback
        print(f"error: {os_error_message(exc, name)}", file=sys.stderr)
        return 2


from ..errors import UserFacingError  # noqa: E402  (kept at the bottom: errors has no heavy imports)
from ..validation import os_error_message  # noqa: E402  (no heavy imports either)
