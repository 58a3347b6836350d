"""Progress bar, cancel, previews and UI messages for ComfyUI, spoken through the core's ``on_step`` protocol.

The core calls ``on_step(done, total, preview)`` after every unit of work; the callback made here
checks ComfyUI's interrupt flag first (so Cancel lands within one step even where the progress hook
is not installed), then moves the node's progress bar with a preview. Previews follow ComfyUI's
``--preview-method`` like its own samplers do: ``none`` sends none; otherwise a latent x0 estimate
is decoded by ComfyUI's own previewer (``latent_preview.get_previewer``: its latent-to-RGB factors, or
TAESD where ``models/vae_approx`` has the decoder), and decoded frames are sent as a strip.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from ...streaming_core.progress import LatentPreview, Preview, ProgressCallback, SD_LATENTS, no_progress
from .runtime import comfy_module

PREVIEW_FRAMES = 4
NO_PREVIEWS = "none"
# ComfyUI's latent format class for each latent family of the core
LATENT_FORMATS = {SD_LATENTS: "SD15"}


def preview_image(frames: Optional[torch.Tensor], max_frames: int = PREVIEW_FRAMES):
    """The newest ``max_frames`` frames of a (F, H, W, 3) 0..1 tensor side by side, as a PIL image."""
    if frames is None:
        return None
    from PIL import Image

    frames = frames.detach().float().cpu()
    if frames.ndim == 3:
        frames = frames[None]
    strip = torch.cat(list(frames[-max_frames:]), dim=1)  # (H, W * n, 3)
    pixels = (strip.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))


class PreviewRenderer:
    """Turns the core's previews into PIL images for one preview method.

    method: ComfyUI's ``--preview-method`` value (``none``, ``auto``, ``latent2rgb``, ``taesd``).
    latent_previewer(family, device): ComfyUI's previewer for a latent family (None: it has none), asked
    once per family and device.
    """

    def __init__(self, method: str, latent_previewer: Callable[[str, torch.device], object],
                 max_frames: int = PREVIEW_FRAMES):
        self.method = str(method)
        self.latent_previewer = latent_previewer
        self.max_frames = max_frames
        self._previewers: dict = {}

    def __call__(self, preview: Preview):
        if preview is None or self.method == NO_PREVIEWS:
            return None
        if isinstance(preview, LatentPreview):
            x0 = preview.newest_frame()
            key = (preview.family, x0.device)
            if key not in self._previewers:
                self._previewers[key] = self.latent_previewer(preview.family, x0.device)
            previewer = self._previewers[key]
            return None if previewer is None else previewer.decode_latent_to_preview(x0)
        return preview_image(preview, self.max_frames)


def _comfy_latent_previewer(family: str, device: torch.device):
    """ComfyUI's previewer for ``family`` (honours --preview-method; TAESD falls back to RGB factors)."""
    fmt_name = LATENT_FORMATS.get(family)
    if fmt_name is None:
        return None
    latent_format = getattr(comfy_module("comfy.latent_formats"), fmt_name)()
    return comfy_module("latent_preview").get_previewer(device, latent_format)


def preview_method() -> str:
    """ComfyUI's --preview-method as its string value ('none', 'auto', 'latent2rgb', 'taesd')."""
    method = comfy_module("comfy.cli_args").args.preview_method
    return str(getattr(method, "value", method))


def progress_callback(total: int, node_id: Optional[str] = None, max_frames: int = PREVIEW_FRAMES) -> ProgressCallback:
    """An ``on_step`` callback driving ComfyUI's progress bar for ``total`` steps (no-op outside ComfyUI)."""
    utils = comfy_module("comfy.utils")
    if utils is None:
        return no_progress
    mm = comfy_module("comfy.model_management")
    max_size = comfy_module("comfy.cli_args").args.preview_size
    bar = utils.ProgressBar(int(total), node_id=node_id)
    render = PreviewRenderer(preview_method(), _comfy_latent_previewer, max_frames)

    def on_step(done: int, total_now: int, preview: Preview = None) -> None:
        mm.throw_exception_if_processing_interrupted()
        image = render(preview)
        bar.update_absolute(done, total_now, None if image is None else ("JPEG", image, max_size))

    return on_step


def show_text(text: str, node_id: Optional[str]) -> None:
    """Show ``text`` on the node in ComfyUI's UI (its progress-text line); a no-op outside ComfyUI."""
    server = comfy_module("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or node_id is None:
        return
    instance.send_progress_text(text, str(node_id))
