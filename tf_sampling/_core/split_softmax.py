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
