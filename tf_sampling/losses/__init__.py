"""Keras losses for the output layers (``SampledSoftmax``, ``NCE``, ``RankSampledSoftmax``).

``SampledSoftmaxLoss``, ``NCELoss``, ``RankSampledSoftmaxLoss``: the sampled
loss while training, the exact full loss while evaluating; they find the class
weights on the output layer (see ``tf_sampling.losses.sampled``). The exact
evaluation metrics are in ``tf_sampling.metrics``.
"""

from tf_sampling.losses.registration import register_with_keras_get
from tf_sampling.losses.sampled import (
    NCELoss,
    RankSampledSoftmaxLoss,
    SampledLoss,
    SampledSoftmaxLoss,
)

register_with_keras_get(SampledSoftmaxLoss, NCELoss, RankSampledSoftmaxLoss)

__all__ = [
    "NCELoss",
    "RankSampledSoftmaxLoss",
    "SampledLoss",
    "SampledSoftmaxLoss",
]
