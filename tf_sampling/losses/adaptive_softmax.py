"""``AdaptiveSoftmaxLoss``: the exact negative log-likelihood of an ``AdaptiveSoftmax`` head.

The loss finds the head's parameters through the tag on ``y_pred``
(``tf_sampling._keras.adaptive_head``), so it takes no layer argument, is
rebuilt by name and keeps working after ``keras.models.load_model``. In
``fit`` ``y_pred`` is the head's input; in ``evaluate`` it is the exact
log-probabilities, and the loss is computed from the head's input all the same
(equal to ``-log_probs[y_true]``, at the adaptive cost).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._keras import adaptive_head, output_tags


@keras.saving.register_keras_serializable(package="tf_sampling")
class AdaptiveSoftmaxLoss(keras.losses.Loss):
    """``-log p(y_true)`` under the ``AdaptiveSoftmax`` head that produced ``y_pred``.

    Pair it with an ``AdaptiveSoftmax`` layer as the model's output::

        model.compile("adam", loss=ts.losses.AdaptiveSoftmaxLoss())

    ``y_true`` holds int class ids ``[*batch]`` (or ``[*batch, 1]``); Keras
    applies masks (of ``y_pred``) and ``sample_weight`` as for any loss, so the
    mean loss per token of a language model is ``log`` of its perplexity.

    Args:
      reduction: Keras reduction, default ``"sum_over_batch_size"``.
      name: Loss name.
      dtype: Keras loss dtype (default float32).
    """

    def __init__(self, reduction="sum_over_batch_size", name: str | None = None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._originals = None

    def __call__(self, y_true, y_pred, sample_weight=None):
        # keras.losses.Loss.__call__ casts y_true and y_pred to the loss dtype
        # before `call`, which turns class ids into floats and drops the
        # head's tag: `call` gets the originals; masks, weights and reduction
        # stay Keras' own.
        self._originals = (y_true, y_pred)
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._originals = None

    def call(self, y_true, y_pred):
        """Per-example loss.

        Args:
          y_true: int ``[*batch]`` or ``[*batch, 1]`` class ids.
          y_pred: The ``AdaptiveSoftmax`` layer's output.

        Returns:
          tf.Tensor: float32 ``[*batch]``.
        """
        if self._originals is not None:
            y_true, y_pred = self._originals
        if output_tags.is_untagged_build_placeholder(y_pred):
            # Only the output's shape and dtype matter in Keras' symbolic build.
            return tf.zeros(tf.shape(y_pred)[:-1], tf.float32)
        layer, inputs = adaptive_head.resolve(y_pred, type(self).__name__)
        return adaptive_head.negative_log_likelihood(layer, y_true, inputs)
