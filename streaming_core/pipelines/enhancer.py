"""Moved to ``streaming_core.models.enhancer`` (the bundle is a model, like the Stream-DiffVSR one);
``Enhancer.chunk_model`` became ``sampling.guided_model.enhancer_chunk_model``. This re-export keeps
other branches' imports working until they are rebased (remove once nothing imports it)."""

from ..models.enhancer import (Enhancer, FramePlan, NativeResolution, crop_frames,  # noqa: F401
                               place_frames, plan_frames)
