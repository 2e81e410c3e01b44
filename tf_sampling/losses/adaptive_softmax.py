"""``AdaptiveSoftmaxLoss``: the exact negative log-likelihood of an ``AdaptiveSoftmax`` head.

The loss finds the head's parameters through the tag on ``y_pred``
(``tf_sampling._keras.adaptive_head``), so it takes no layer argument, is
rebuilt by name and keeps working after ``keras.models.load_model``. In
``fit`` ``y_pred`` is the head's input; in ``evaluate`` it is the exact
log-probabilities, and the loss is computed from the head's input all the same
(equal to ``-log_probs[y_true]``, at the adaptive cost). With ``padding_id``
both take padded label sets.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._keras import adaptive_head, full_loss, output_tags
from tf_sampling.losses.tagged_inputs import TaggedInputsLoss


@keras.saving.register_keras_serializable(package="tf_sampling")
class AdaptiveSoftmaxLoss(TaggedInputsLoss):
    """``-log p(y_true)`` under the ``AdaptiveSoftmax`` head that produced ``y_pred``.

    Pair it with an ``AdaptiveSoftmax`` layer as the model's output::

        model.compile("adam", loss=ts.losses.AdaptiveSoftmaxLoss())

    ``y_true`` holds int class ids ``[*batch]`` (or ``[*batch, 1]``); Keras
    applies masks (of ``y_pred``) and ``sample_weight`` as for any loss, so the
    mean loss per token of a language model is ``log`` of its perplexity.

    A variable number of labels per example (``padding_id``): ``y_true`` is
    ``[*batch, max_true]`` with ``padding_id`` in the unused slots, and
    example ``i``'s ``n_i`` real labels share the target mass:
    ``-(1 / n_i) * sum_k log p(y_ik)`` (``tf_sampling.nn.label_set``), in
    ``fit`` and ``evaluate`` alike.

    Args:
      reduction: Keras reduction, default ``"sum_over_batch_size"``.
      name: Loss name.
      dtype: Keras loss dtype (default float32).
      padding_id: Optional int, the id of unused ``y_true`` slots, outside
        ``[0, num_classes)`` (e.g. -1); ``max_true`` is ``y_true``'s last
        dimension. Keras 3 has no ragged targets, hence the padded form.
      allow_empty: bool, with ``padding_id``: a row of only padding gets loss
        0 (and no gradient) instead of an ``InvalidArgumentError`` (default
        False). The reduction still counts it, as Keras counts a row of
        sample weight 0.
    """

    def __init__(
        self,
        reduction="sum_over_batch_size",
        name: str | None = None,
        dtype=None,
        padding_id: int | None = None,
        allow_empty: bool = False,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        padding_id, allow_empty = full_loss.check_padding_options(padding_id, allow_empty)
        self.padding_id = padding_id
        self.allow_empty = allow_empty

    def call(self, y_true, y_pred):
        """Per-example loss.

        Args:
          y_true: int ``[*batch]`` or ``[*batch, 1]`` class ids; with
            ``padding_id``, ``[*batch, max_true]``.
          y_pred: The ``AdaptiveSoftmax`` layer's output.

        Returns:
          tf.Tensor: float32 ``[*batch]``.
        """
        y_true, y_pred = self.inputs(y_true, y_pred)
        if output_tags.is_untagged_build_placeholder(y_pred):
            # Only the output's shape and dtype matter in Keras' symbolic build.
            return tf.zeros(tf.shape(y_pred)[:-1], tf.float32)
        layer, inputs = adaptive_head.resolve(y_pred, type(self).__name__)
        return adaptive_head.negative_log_likelihood(
            layer, y_true, inputs, self.padding_id, self.allow_empty
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(padding_id=self.padding_id, allow_empty=self.allow_empty)
        return config
