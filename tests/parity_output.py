"""Reading ``verify-fixture`` output in tests: one ``PASS name`` / ``FAIL name`` line per case."""

from __future__ import annotations

import re


def case_lines(text: str) -> dict[str, str]:
    """Case name -> "PASS" or "FAIL"."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^(PASS|FAIL)\s+(\S+)", text, re.M)}
