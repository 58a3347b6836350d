"""``verify-fixture DIR``: one line per case, then ``N passed, M failed``; exit 0 only if all pass."""

from __future__ import annotations

import sys
import traceback

import torch

from ..parity import fixture_kind, run_fixture
from ..parity.report import CaseResult


def add_arguments(parser) -> None:
    parser.add_argument("fixture_dir", help="a parity fixture directory (config.json + weights + io tensors)")
    parser.add_argument("--device", default="cpu", help="torch device to run on (default cpu; TF32 is switched off)")
    parser.add_argument("--verbose", action="store_true", help="also print every tensor check inside a case")


def run(args) -> int:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    fixture_kind(args.fixture_dir)  # a wrong directory is a user error, not a failed case
    passed = failed = 0
    cases = run_fixture(args.fixture_dir, args.device)
    while True:
        try:
            result = next(cases)
        except StopIteration:
            break
        except Exception as exc:  # a crash inside a case is a failed case, not a crashed command
            traceback.print_exc(file=sys.stderr)
            result = CaseResult("<runner>", False, detail=f"{type(exc).__name__}: {exc}")
            print(result.line(), flush=True)
            failed += 1
            break
        print(result.line(), flush=True)
        if args.verbose:
            for check in result.checks:
                print("    " + check.line())
        passed += result.passed
        failed += not result.passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1
