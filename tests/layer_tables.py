"""Reads a ``tf_sampling.layers`` output layer's sharded weights back as dense NumPy tables."""

from __future__ import annotations

import numpy as np

from tf_sampling._core.sharding import shard_class_ids


def dense_table(layer) -> tuple[np.ndarray, np.ndarray]:
    """Dense float64 ``[V, dim]`` weights and ``[V]`` biases in class order, from the layer's shards."""
    ids = shard_class_ids(layer.num_classes, layer.num_shards, layer.partition_strategy)
    w = np.zeros((layer.num_classes, layer.input_dim))
    b = np.zeros(layer.num_classes)
    for shard_ids, k, bias in zip(ids, layer.kernel_shards, layer.bias_shards, strict=True):
        w[shard_ids] = k.numpy()
        b[shard_ids] = bias.numpy()
    return w, b
