"""Stream-DiffVSR's networks (spec ``stream_diffvsr_spec.md`` §2).

- ``denoiser``: diffusers ``UNet2DConditionModel`` (x4-upscaler UNet, 4 latent + 3 LR channels) and
  the ARTG ``ControlNetModel`` conditioned on the flow-warped previous HR output;
- ``temporal_vae``: the TAESD-style 4x autoencoder with a Temporal Processor Module in every block;
- ``raft`` / ``flow`` / ``warp``: torchvision RAFT-large split into per-frame features and per-pair
  flow, optional tiling, and the official backward warp;
- ``text``: the empty-prompt CLIP embedding; ``bundle``: ``SDVSRModels``, all of it loaded.

Loading from files: ``streaming_core.checkpoints.sdvsr.load_sdvsr``. The algorithm:
``streaming_core.pipelines.upscale.upscale_stream``.
"""

from .bundle import NUM_STEPS, SDVSRModels, sdvsr_schedule
from .raft import RaftConfig, RaftFlow, build_raft
from .temporal_vae import TemporalAutoencoderTiny, TemporalVAEConfig, TPMBlock
from .warp import flow_warp

__all__ = ["NUM_STEPS", "SDVSRModels", "sdvsr_schedule", "RaftConfig", "RaftFlow", "build_raft",
           "TemporalAutoencoderTiny", "TemporalVAEConfig", "TPMBlock", "flow_warp"]
