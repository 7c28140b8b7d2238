"""Tokenizers shipped with the core (registered when the registry first loads its built-ins).

* ``frame-vq``: :class:`~worldmodels.tokenizers.frame_vq.FrameVQTokenizer`, an IRIS-style
  per-frame convolutional VQ-VAE, optionally with a ``timm`` backbone as encoder.
"""

from worldmodels.tokenizers.frame_vq import FrameVQTokenizer

__all__ = ["FrameVQTokenizer"]
