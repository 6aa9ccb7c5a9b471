"""MSRG: multimodal sentiment with a residual gating network and emotion-intensity attention.

Import from the submodules (`msrg.model`, `msrg.config`, ...); this package file stays empty so that
importing the configuration does not import torch.
"""
