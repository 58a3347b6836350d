"""The pack's ComfyUI nodes: thin classes over ``streaming_core``; everything ComfyUI-specific goes
through ``nodes.host``.

A node module defines its classes plus ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``;
list it in ``NODE_MODULES`` to register it.
"""

from __future__ import annotations

from . import blend_model, chunk_loop, evaluate, generate, loaders, refine, upscale

NODE_MODULES = (loaders, generate, chunk_loop, refine, upscale, blend_model, evaluate)


def _collect(modules):
    classes, names = {}, {}
    for module in modules:
        for node_id, cls in module.NODE_CLASS_MAPPINGS.items():
            if node_id in classes:
                raise RuntimeError(f"node id {node_id} is defined twice ({classes[node_id].__module__}, {module.__name__})")
            classes[node_id] = cls
        names.update(module.NODE_DISPLAY_NAME_MAPPINGS)
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _collect(NODE_MODULES)
