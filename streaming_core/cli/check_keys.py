"""``check-keys KEYS.json``: exit 0 only when every official entry maps with its exact shape."""

from __future__ import annotations

from ..checkpoints.keycheck import check_key_file


def add_arguments(parser) -> None:
    parser.add_argument("keys_json", help="an official key list, e.g. ../shared/specs/st2v_official_keys.json")
    parser.add_argument("--limit", type=int, default=20, help="how many offending keys to list per category")


def run(args) -> int:
    reports = check_key_file(args.keys_json)
    for report in reports:
        print("\n".join(report.lines(args.limit)))
    ok = all(r.ok for r in reports)
    print("OK: every official key maps with its shape" if ok else "FAILED: see above")
    return 0 if ok else 1
