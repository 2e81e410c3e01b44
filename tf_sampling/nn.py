"""Candidate-sampling losses with TensorFlow's ``tf.compat.v1`` signatures.

``sampled_softmax_loss`` and ``nce_loss`` match ``tf.compat.v1.nn.*`` argument
for argument; ``rank_sampled_softmax_loss`` matches TF 1.x
``tf.contrib.nn.rank_sampled_softmax_loss``. Without ``sampled_values``,
inside ``tf.function(jit_compile=True)`` (where TensorFlow's sampler ops
cannot run), they draw from the compilable sampler of their default
distribution (``tf_sampling.samplers.xla_defaults``).
"""

from tf_sampling._core.adaptive_layout import cutoffs_from_counts as adaptive_softmax_cutoffs
from tf_sampling._core.adaptive_softmax import (
    adaptive_log_softmax,
    adaptive_softmax_loss,
    adaptive_top_k,
)
from tf_sampling._core.full_softmax import (
    full_sigmoid_cross_entropy,
    full_softmax_cross_entropy,
)
from tf_sampling._core.full_top_k import full_top_k
from tf_sampling._core.label_sets import LabelSet, label_set, ragged_labels
from tf_sampling._core.multilabel_metrics import full_multilabel_metrics
from tf_sampling._core.rank_sampled_softmax import rank_sampled_softmax_loss
from tf_sampling._core.retrieval_loss import in_batch_softmax_loss
from tf_sampling._core.sampled_losses import nce_loss, sampled_softmax_loss

__all__ = [
    "LabelSet",
    "adaptive_log_softmax",
    "adaptive_softmax_cutoffs",
    "adaptive_softmax_loss",
    "adaptive_top_k",
    "full_multilabel_metrics",
    "full_sigmoid_cross_entropy",
    "full_softmax_cross_entropy",
    "full_top_k",
    "in_batch_softmax_loss",
    "label_set",
    "nce_loss",
    "rank_sampled_softmax_loss",
    "ragged_labels",
    "sampled_softmax_loss",
]
