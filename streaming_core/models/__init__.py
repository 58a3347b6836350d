"""Networks and model bundles: pure ``nn.Module`` code whose configs are read from tensor shapes
(UNet3D, CAM, APM, encoders, VAE, MS-Vid2Vid-XL, Stream-DiffVSR in ``sdvsr/``, the ``Enhancer`` bundle).

May import: torch, the libraries the networks come from (diffusers, transformers, open_clip: inside
functions where heavy), ``streaming_core.schedules`` and the base modules; never sampling, checkpoints
or anything above. A new network or bundle is a new module here; its loader goes in ``checkpoints/``.
"""
