"""Networks: SIREN and the latent-conditioned SIREN (:mod:`.siren`, with the fused sine-stack
backward of :mod:`.fused`) and the paper's convolutional decoder (:mod:`.conv`). Imports only
:mod:`inr_gon.core`'s interfaces."""

from .conv import ConvDecoder
from .siren import LatentSiren, Siren, SineLayer, siren_uniform_

__all__ = ["LatentSiren", "Siren", "SineLayer", "siren_uniform_", "ConvDecoder"]
