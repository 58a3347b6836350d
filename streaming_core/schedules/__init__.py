"""Noise schedules: the discrete VP tables models were trained with, as facts (betas, alphas, sigmas), their
one timestep-spacing function, and the one prediction vocabulary with its output -> x0/eps conversion.

Below the models: imports only torch/numpy and ``streaming_core``'s base modules, so a model bundle
or a loader may carry its schedule. Samplers (``sampling/``) step through these tables; a new
schedule family is a new module here.
"""
