"""The result of a key-coverage check (see ``keycheck.py``): official keys and shapes vs ours.

A module of its own below the family loaders: each of them builds a ``KeyReport`` and ``keycheck``
calls each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KeyReport:
    """Official keys vs the keys our mapping produces from our full-size model."""

    model: str
    expected: int
    missing: list[str] = field(default_factory=list)  # official keys our model does not provide
    unexpected: list[str] = field(default_factory=list)  # keys our model has that are not official
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, official, ours

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def lines(self, limit: int = 20) -> list[str]:
        out = [f"{self.model}: {self.expected} official entries"]
        for title, items in (("not mapped", self.missing), ("extra", self.unexpected)):
            if items:
                out.append(f"  {len(items)} {title}: " + ", ".join(items[:limit]) + (" ..." if len(items) > limit else ""))
        if self.mismatched:
            out.append(f"  {len(self.mismatched)} shape mismatches:")
            out += [f"    {k}: official {list(a)} vs ours {list(b)}" for k, a, b in self.mismatched[:limit]]
        mapped = self.expected - len(self.missing) - len(self.mismatched)
        out.append(f"  {mapped}/{self.expected} entries map exactly" + ("" if self.ok else " -> FAIL"))
        return out


def compare_shapes(model: str, official: dict[str, tuple], ours: dict[str, tuple]) -> KeyReport:
    report = KeyReport(model, len(official))
    report.missing = sorted(official.keys() - ours.keys())
    report.unexpected = sorted(ours.keys() - official.keys())
    report.mismatched = [(k, tuple(official[k]), tuple(ours[k])) for k in sorted(official.keys() & ours.keys())
                         if tuple(official[k]) != tuple(ours[k])]
    return report
