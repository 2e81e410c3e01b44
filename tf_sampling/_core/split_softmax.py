"""Softmax cross-entropy over true and sampled logits kept apart.

The sampled softmax loss is a softmax over ``[true_logits, sampled_logits]``
with target ``1 / num_true`` on each true column. Computing it from the two
parts, with a hand-written gradient, skips what TensorFlow's path pays for on
every step: concatenating the logits, building a dense target matrix, the CPU
``SoftmaxCrossEntropyWithLogits`` kernel (several times slower than the plain
elementwise ops below), and slicing its gradient apart again. Values and
gradients equal that kernel's to rounding.
"""

from __future__ import annotations

import tensorflow as tf


def split_softmax_cross_entropy(true_logits: tf.Tensor, sampled_logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy of ``[true, sampled]`` logits against targets 1/num_true on the true.

    Args:
      true_logits: float ``[batch_size, num_true]`` logits of the true classes.
      sampled_logits: float ``[batch_size, num_sampled]`` logits of the sampled
        classes, same dtype.

    Returns:
      tf.Tensor: ``[batch_size]`` losses ``logsumexp(all) - mean(true_logits)``,
      with gradients ``softmax - targets`` to both inputs.
    """

    @tf.custom_gradient
    def forward(true_logits, sampled_logits):
        # The row maximum shifts every exponent to <= 0; the loss and its
        # gradient do not depend on it, so it gets no gradient.
        shift = tf.maximum(
            tf.reduce_max(true_logits, axis=1), tf.reduce_max(sampled_logits, axis=1)
        )
        shift_column = tf.expand_dims(shift, 1)
        shifted_true = true_logits - shift_column
        true_exp = tf.exp(shifted_true)
        sampled_exp = tf.exp(sampled_logits - shift_column)
        total = tf.reduce_sum(true_exp, axis=1) + tf.reduce_sum(sampled_exp, axis=1)
        # log(total) - mean(true - shift): the mean of the shifted logits (all
        # <= 0), so that a true logit equal to the maximum loses no digits to
        # cancellation and a sum of huge finite true logits cannot overflow.
        losses = tf.math.log(total) - tf.reduce_mean(shifted_true, axis=1)

        def backward(upstream):
            # d loss / d logit = softmax - target, times the upstream gradient.
            scale = tf.expand_dims(upstream / total, 1)
            target = tf.expand_dims(upstream, 1) / tf.cast(tf.shape(true_logits)[1], upstream.dtype)
            return true_exp * scale - target, sampled_exp * scale

        return losses, backward

    return forward(true_logits, sampled_logits)


def masked_split_softmax_cross_entropy(
    true_logits: tf.Tensor, sampled_logits: tf.Tensor, mask: tf.Tensor, count: tf.Tensor, empty
) -> tf.Tensor:
    """:func:`split_softmax_cross_entropy` where only the ``mask`` true columns are true classes.

    Row ``i`` has ``count[i]`` real true columns, each with target
    ``1 / count[i]``; the others are excluded from the softmax exactly (their
    exponent is a select to 0, their target 0, their gradient 0). With every
    column real the result is :func:`split_softmax_cross_entropy`'s, bit for
    bit: each mask is a select and each rescaling a product by exactly 1.

    Args:
      true_logits: float ``[batch_size, num_true]``.
      sampled_logits: float ``[batch_size, num_sampled]``, same dtype.
      mask: bool ``[batch_size, num_true]``, the real true columns.
      count: ``[batch_size]`` the number of real columns, same dtype.
      empty: bool ``[batch_size]``, rows allowed to have none: loss and
        gradients 0.

    Returns:
      tf.Tensor: ``[batch_size]`` losses.
    """
    dtype = true_logits.dtype
    zero = tf.zeros([], dtype)
    width = tf.cast(tf.shape(true_logits)[1], dtype)
    # An empty row divides by 1, not 0: its loss is then zeroed by a select.
    safe_count = tf.where(empty, tf.ones([], dtype), count)

    @tf.custom_gradient
    def forward(true_logits, sampled_logits):
        kept_true = tf.where(mask, true_logits, tf.constant(dtype.min, dtype))
        shift = tf.maximum(tf.reduce_max(kept_true, axis=1), tf.reduce_max(sampled_logits, axis=1))
        shift_column = tf.expand_dims(shift, 1)
        shifted_true = kept_true - shift_column
        true_exp = tf.where(mask, tf.exp(shifted_true), zero)
        sampled_exp = tf.exp(sampled_logits - shift_column)
        total = tf.reduce_sum(true_exp, axis=1) + tf.reduce_sum(sampled_exp, axis=1)
        # The mean over the real columns: the mean over all of them with
        # the padded ones at 0, times width / count (exactly 1 for a full row).
        true_mean = tf.reduce_mean(tf.where(mask, shifted_true, zero), axis=1) * (
            width / safe_count
        )
        losses = tf.where(empty, zero, tf.math.log(total) - true_mean)

        def backward(upstream):
            upstream = tf.where(empty, zero, upstream)
            scale = tf.expand_dims(upstream / total, 1)
            target = tf.where(mask, tf.expand_dims(upstream / safe_count, 1), zero)
            return true_exp * scale - target, sampled_exp * scale

        return losses, backward

    return forward(true_logits, sampled_logits)
