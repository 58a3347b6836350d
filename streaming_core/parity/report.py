"""Comparison of our tensors with fixture references, and the one-line-per-case report."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import torch

# Float32 results that fixtures record as "exact" still move in their last bits with the CPU's kernel path
# (vector width, ATen's generic vs AVX2/AVX-512 kernels). Measured on this pack's fixtures, checked under
# ATEN_CPU_CAPABILITY=default against AVX-512 (the machine that recorded them):
# - noise tables in [0, 1] (cumprod of betas, sigma from exp/log/tan): up to 3.0e-7 (MS-Vid2Vid sigma,
#   also its official float32 against float64) and 6.0e-8 (Stream-DiffVSR alphas_cumprod). 1e-6 is 3x the
#   larger; a wrong schedule (beta range, spacing, no zero terminal SNR) moves entries by more than 1e-4.
# - standard-normal draws from a seeded CPU generator (torch.randn turns the same random bits into normals
#   with vectorized log/sin/cos): up to 2.0e-6 on |x| <= 4.6. 1e-5 is 5x that; a wrong seed, order or shape
#   changes draws by O(1). Integers (timesteps, offsets) stay exact.
TABLE_ATOL = 1e-6
NORMAL_DRAW_ATOL = 1e-5


@dataclass
class CaseResult:
    name: str
    passed: bool
    max_abs: float = float("nan")
    max_rel: float = float("nan")  # max |ours - ref| / (1 + |ref|)
    rel_l2: float = float("nan")
    detail: str = ""
    checks: list["CaseResult"] = field(default_factory=list)

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        text = f"{status}  {self.name:<48} max_abs={self.max_abs:.3e}  max_rel={self.max_rel:.3e}  rel_l2={self.rel_l2:.3e}"
        return text + (f"  ({self.detail})" if self.detail else "")


def errors(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    """(max |d|, max |d|/(1+|ref|), ||d||/||ref||) in float64."""
    ours = ours.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    if ours.shape != ref.shape:
        raise ValueError(f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}")
    d = (ours - ref).abs()
    max_abs = d.max().item() if d.numel() else 0.0
    max_rel = (d / (1 + ref.abs())).max().item() if d.numel() else 0.0
    ref_norm = ref.norm().item()
    rel_l2 = (d.norm().item() / ref_norm) if ref_norm > 0 else d.norm().item()
    return max_abs, max_rel, rel_l2


def compare(
    name: str,
    ours: torch.Tensor,
    ref: torch.Tensor,
    *,
    max_rel: float | None = None,
    rel_l2: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> CaseResult:
    """Check ``ours`` against ``ref`` with whichever tolerance rules the fixture states.

    ``max_rel``/``rel_l2``: max|d|/(1+|ref|) and relative L2 bounds. ``atol``/``rtol``: the
    elementwise rule |d| <= atol + rtol*|ref|. Every rule given must hold.
    """
    try:
        m_abs, m_rel, r_l2 = errors(ours, ref)
    except ValueError as exc:
        return CaseResult(name, False, detail=str(exc))
    if not torch.isfinite(ours.detach().float()).all():
        return CaseResult(name, False, m_abs, m_rel, r_l2, detail="non-finite values")
    ok, why = True, []
    if max_rel is not None and not m_rel <= max_rel:
        ok, why = False, why + [f"max_rel > {max_rel:g}"]
    if rel_l2 is not None and not r_l2 <= rel_l2:
        ok, why = False, why + [f"rel_l2 > {rel_l2:g}"]
    if atol is not None or rtol is not None:
        o = ours.detach().to("cpu", torch.float64)
        r = ref.detach().to("cpu", torch.float64)
        bound = (atol or 0.0) + (rtol or 0.0) * r.abs()
        bad = ((o - r).abs() > bound).sum().item()
        if bad:
            ok, why = False, why + [f"{bad} elements outside atol={atol:g} rtol={rtol:g}"]
    return CaseResult(name, ok, m_abs, m_rel, r_l2, detail="; ".join(why))


def combine(name: str, checks: list[CaseResult]) -> CaseResult:
    """One case made of several tensor checks: passes when all pass; reports the worst errors."""
    if not checks:
        return CaseResult(name, False, detail="no checks")
    worst = max(checks, key=lambda c: (not c.passed, c.max_rel if c.max_rel == c.max_rel else float("inf")))
    failed = [c.name for c in checks if not c.passed]
    detail = f"{len(checks)} tensors" + (f"; failed: {', '.join(failed[:4])}" if failed else "")
    if failed and worst.detail:
        detail += f"; {worst.name}: {worst.detail}"
    return CaseResult(
        name,
        not failed,
        max(c.max_abs for c in checks),
        max(c.max_rel for c in checks),
        max(c.rel_l2 for c in checks),
        detail=detail,
        checks=checks,
    )


def guarded(name: str, fn) -> CaseResult:
    """Run one case; an exception inside it becomes a failed result naming the error."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed silently
        tb = traceback.format_exc(limit=-3).strip().splitlines()
        return CaseResult(name, False, detail=f"{type(exc).__name__}: {exc} [{' | '.join(tb[-3:])}]")
