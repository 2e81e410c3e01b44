"""Exact full-softmax evaluation metrics for the ``tf_sampling.layers`` outputs.

``Perplexity`` and ``TopKAccuracy`` live with the losses (they share the way
the loss finds full logits); this module is their public home.
"""

from tf_sampling.losses.metrics import Perplexity, TopKAccuracy

__all__ = ["Perplexity", "TopKAccuracy"]
