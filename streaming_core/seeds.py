"""Independent seeds derived from one user seed, so every random stream of a run is controlled by the
seed the user gave, and no two streams (or two runs with neighbouring seeds) share their draws."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from a hash of ``parts`` (e.g. a purpose string, the user's seed, an index)."""
    digest = hashlib.sha256(" ".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
