"""Out-of-memory fallback: run once, and on ``torch.OutOfMemoryError`` retry once with a smaller setting.

Why: the memory estimates are estimates, and the GPU is shared (other models, other programs). A
VAE pass, RAFT or a refine window that does not fit is retried once with smaller slices or tiles (the
log says so); a second failure is a ``UserFacingError`` naming the settings that would fit.
"""

from __future__ import annotations

import gc
import logging
from typing import Callable, TypeVar

import torch

from .errors import OutOfMemory

log = logging.getLogger("streaming_core")
T = TypeVar("T")


def free_cached_memory() -> None:
    """Drop what the failed attempt left cached, so the retry starts from the same free memory."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def retry_smaller(what: str, attempt: Callable[[object], T], setting, smaller, fits: str,
                  describe: Callable[[object], str] = str) -> T:
    """``attempt(setting)``; on out-of-memory, ``attempt(smaller)`` once (logged). ``fits``: what the person
    can change when even ``smaller`` fails (the message of the raised ``OutOfMemory``); ``smaller`` None:
    no retry. ``describe`` words a setting for the log and the message."""
    try:
        return attempt(setting)
    except torch.OutOfMemoryError:
        if smaller is None or smaller == setting:
            free_cached_memory()
            raise OutOfMemory(f"{what} ran out of memory at {describe(setting)}: {fits}") from None
        log.warning("%s ran out of memory at %s; retrying with %s", what, describe(setting), describe(smaller))
    free_cached_memory()
    try:
        return attempt(smaller)
    except torch.OutOfMemoryError:
        free_cached_memory()
        raise OutOfMemory(f"{what} ran out of memory even at {describe(smaller)}: {fits}") from None
