"""Exceptions whose message is meant for the person running the tool.

Every message names the problem and what to do about it; the CLI prints it without a traceback and
the ComfyUI nodes let it surface as the node's error text.
"""


class UserFacingError(Exception):
    """Base class: bad input, a wrong or broken file, an impossible setting."""


class CheckpointError(UserFacingError, ValueError):
    """A weight file is missing, unreadable, unsafe, or not the model it was given as."""


class InputError(UserFacingError, ValueError):
    """A tensor, size, frame count or option that the pipeline cannot work with."""


class Cancelled(Exception):
    """Raised by a progress callback to stop a run between two denoising steps."""


class OutOfMemory(UserFacingError, RuntimeError):
    """Out of (GPU) memory even after the automatic retry with smaller slices or tiles."""
