"""Keras losses and metrics for the ``tf_sampling.layers`` output layers.

* ``SampledSoftmaxLoss``, ``NCELoss``, ``RankSampledSoftmaxLoss``: the sampled
  loss while training, the exact full loss while evaluating; they find the
  class weights on the output layer (see ``tf_sampling.losses.sampled``).
* ``Perplexity``, ``TopKAccuracy``: exact full-softmax evaluation metrics.
"""

from tf_sampling.losses.metrics import Perplexity, TopKAccuracy
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
    "Perplexity",
    "RankSampledSoftmaxLoss",
    "SampledLoss",
    "SampledSoftmaxLoss",
    "TopKAccuracy",
]
