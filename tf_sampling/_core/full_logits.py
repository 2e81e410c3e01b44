"""Exact logits over every class, for evaluation and inference."""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import checks, loss_args, sharding
from tf_sampling._core.sampled_logits import compute_dtype


def full_logits(weights, biases, inputs, partition_strategy: str = "mod") -> tf.Tensor:
    """Computes ``inputs @ weights^T + biases`` over all classes, in class order.

    The class order follows the same rule as the sampled losses, so with a
    sharded table the logit in column ``i`` is the one the training loss used
    for class ``i`` under the same ``partition_strategy``.

    Args:
      weights: ``[num_classes, dim]`` table (tensor, variable, list of shards,
        ``PartitionedVariable`` or ``ShardedVariable``).
      biases: ``[num_classes]`` table, sharded like ``weights``.
      inputs: float ``[..., dim]`` activations (any leading dimensions).
      partition_strategy: ``"mod"`` or ``"div"``.

    Returns:
      tf.Tensor: ``[..., num_classes]`` logits in float32 (float64 when an
      operand is float64).

    Raises:
      TypeError: a missing table, or non-float inputs or tables.
      ValueError: a bad ``partition_strategy``, tables of the wrong rank or
        of different row counts, bias shards that do not match the weight
        shards, or ``inputs`` whose last dimension is not the weights' dim.
    """
    with tf.name_scope("full_logits"):
        inputs = tf.convert_to_tensor(inputs, name="inputs")
        checks.check_floating(inputs.dtype, "inputs")
        loss_args.check_partition_strategy(partition_strategy)
        weight_table, bias_table = sharding.class_tables(
            weights, biases, inputs, None, partition_strategy, same_shards=True
        )
        dtype = compute_dtype(inputs.dtype, weight_table.dtype)
        x = tf.cast(inputs, dtype)
        parts = [
            tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), tf.cast(w, dtype), transpose_b=True)
            + tf.cast(b, dtype)
            for w, b in zip(weight_table.shards, bias_table.shards, strict=True)
        ]
        logits = parts[0] if len(parts) == 1 else tf.concat(parts, 1)
        order = weight_table.layout.class_order()
        if order is not None:
            logits = tf.gather(logits, tf.constant(order, tf.int32), axis=1)
        out_shape = tf.concat([tf.shape(x)[:-1], [weight_table.num_rows]], 0)
        return tf.reshape(logits, out_shape)
