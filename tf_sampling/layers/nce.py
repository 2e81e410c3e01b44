"""``NCE``: noise-contrastive estimation while training, exact full sigmoid otherwise."""

from __future__ import annotations

import keras

from tf_sampling._keras import full_loss
from tf_sampling.layers.base import SampledOutputLayer


@keras.saving.register_keras_serializable(package="tf_sampling")
class NCE(SampledOutputLayer):
    """Output layer trained with noise-contrastive estimation (``tf_sampling.nn.nce_loss``).

    Same arguments and mechanism as ``SampledSoftmax`` (compile with
    ``ts.losses.NCELoss()``), with TensorFlow's NCE conventions:
    ``remove_accidental_hits`` defaults to False; evaluation computes the full
    sigmoid cross-entropy summed over all classes (the counterpart TensorFlow
    documents for ``nce_loss``), and ``output_mode="probabilities"`` returns
    per-class sigmoids.

    Args:
      num_classes: int >= 2.
      num_sampled: int, negative classes sampled per batch.
      remove_accidental_hits: bool (None: False, as in ``tf.nn.nce_loss``).
      **kwargs: every other ``SampledSoftmax`` argument.
    """

    objective = full_loss.SIGMOID
    default_remove_accidental_hits = False
