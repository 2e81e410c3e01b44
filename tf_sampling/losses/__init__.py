"""Keras losses for the output layers (``SampledSoftmax``, ``NCE``, ``RankSampledSoftmax``).

``SampledSoftmaxLoss``, ``NCELoss``, ``RankSampledSoftmaxLoss``: the sampled
loss while training, the exact full loss while evaluating; they find the class
weights on the output layer (see ``tf_sampling.losses.sampled``).
``FullSoftmaxLoss``: the exact full loss in training too, in class blocks.
``AdaptiveSoftmaxLoss``: the exact likelihood of an ``AdaptiveSoftmax`` head. The
exact evaluation metrics are in ``tf_sampling.metrics``.
"""

from tf_sampling.losses.adaptive_softmax import AdaptiveSoftmaxLoss
from tf_sampling.losses.registration import register_with_keras_get
from tf_sampling.losses.sampled import (
    FullSoftmaxLoss,
    NCELoss,
    RankSampledSoftmaxLoss,
    SampledLoss,
    SampledSoftmaxLoss,
)

register_with_keras_get(SampledSoftmaxLoss, NCELoss, RankSampledSoftmaxLoss, FullSoftmaxLoss)
register_with_keras_get(AdaptiveSoftmaxLoss)

__all__ = [
    "AdaptiveSoftmaxLoss",
    "FullSoftmaxLoss",
    "NCELoss",
    "RankSampledSoftmaxLoss",
    "SampledLoss",
    "SampledSoftmaxLoss",
]
