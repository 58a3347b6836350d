"""The ComfyUI side of the pack: the only code that touches ComfyUI (``comfy.*``, ``folder_paths``).

Nodes import from here, never from ComfyUI. Every function also works without ComfyUI (plain
PyTorch: CPU devices, files under $STREAMING_MODELS_DIR, no progress bar), so node functions run in
CI; only patching a native MODEL needs a real ComfyUI.
"""

from .bundles import bundle_of, load_bundle_for_use, wrap_bundle
from .context_windows import BLEND_CHOICES, patch_model_with_blend
from .devices import DTYPE_CHOICES, ROLES, intermediate_device, load_device, offload_device, pick_dtype, torch_device
from .folders import (MODEL_EXTENSIONS, MODEL_FOLDERS, folder_dirs, full_path, list_files, list_subfolders,
                      register_model_folders, subfolder_path)
from .images import FrameCollector, frames_to_image, image_to_frames
from .models import (WEIGHT_DTYPE_CHOICES, HostedModel, core_model, load_for_use, manageable_layers,
                     place_outside_layers, wrap_model)
from .outputs import output_directory, output_subfolder
from .progress import PreviewRenderer, preview_image, preview_method, progress_callback, show_text
from .runtime import comfy_module, in_comfyui
from .video_models import LatentLayout, latent_layout, resolve_layout
from .videos import (HandoffWriter, VanishedVideo, deliver_frames, is_streamed, output_generation, output_used, remember_output,
                     video_source, write_video_output)

__all__ = [
    "bundle_of", "load_bundle_for_use", "wrap_bundle",
    "BLEND_CHOICES", "patch_model_with_blend",
    "DTYPE_CHOICES", "ROLES", "intermediate_device", "load_device", "offload_device", "pick_dtype", "torch_device",
    "MODEL_EXTENSIONS", "MODEL_FOLDERS", "folder_dirs", "full_path", "list_files", "list_subfolders",
    "register_model_folders", "subfolder_path",
    "FrameCollector", "frames_to_image", "image_to_frames",
    "WEIGHT_DTYPE_CHOICES", "HostedModel", "core_model", "load_for_use", "manageable_layers", "place_outside_layers",
    "wrap_model",
    "output_directory", "output_subfolder",
    "PreviewRenderer", "preview_image", "preview_method", "progress_callback", "show_text",
    "comfy_module", "in_comfyui",
    "LatentLayout", "latent_layout", "resolve_layout",
    "HandoffWriter", "VanishedVideo", "deliver_frames", "is_streamed", "output_generation", "output_used", "remember_output",
    "video_source", "write_video_output",
]
