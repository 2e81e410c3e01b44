"""Regularizers of the output layers' class tables: a clear warning, and the sparse alternative.

A Keras ``kernel_regularizer`` is a function of the whole table, so its
gradient is dense; the layers warn at their first training call. The sparse
alternative ``touched_rows_penalty`` is checked against the full penalty's
gradient computed by TensorFlow on the whole table.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
from tf_sampling import optimizers

HEADS = {
    "sampled_softmax": (tsl.SampledSoftmax, tsloss.SampledSoftmaxLoss, {}),
    "nce": (tsl.NCE, tsloss.NCELoss, {}),
    "rank": (
        tsl.RankSampledSoftmax,
        tsloss.RankSampledSoftmaxLoss,
        {"num_resampled": 3, "sampler": "uniform"},
    ),
}


def _regularizer_warnings(layer_cls, loss_cls, extra, steps=2, **kwargs):
    inputs = keras.Input((4,))
    head = layer_cls(20, num_sampled=6, seed=1, name="head", **extra, **kwargs)
    model = keras.Model(inputs, head(inputs))
    model.compile(optimizer=optimizers.LazyAdam(), loss=loss_cls(), run_eagerly=True)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.arange(8) % 20
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            model.train_on_batch(x, y)
        model.evaluate(x, y, verbose=0)
    return [str(w.message) for w in caught if "regularizer" in str(w.message)]


@pytest.mark.parametrize("name", list(HEADS))
def test_a_table_regularizer_warns_once_at_the_first_training_step(name):
    layer_cls, loss_cls, extra = HEADS[name]
    found = _regularizer_warnings(
        layer_cls, loss_cls, extra, kernel_regularizer="l2", bias_regularizer="l1"
    )
    assert len(found) == 1
    message = found[0]
    assert "kernel_regularizer=L2" in message and "bias_regularizer=L1" in message
    assert "[20, ...]" in message and "touched_rows_penalty" in message
    assert "LazyAdamW(weight_decay=...)" in message


def test_no_warning_without_regularizers():
    assert _regularizer_warnings(*HEADS["sampled_softmax"]) == []


def test_touched_rows_penalty_gradient_is_sparse_and_equals_the_full_penalty_on_those_rows():
    table = tf.Variable(np.random.default_rng(1).normal(size=(50, 3)).astype("float32"))
    ids = tf.constant([[4, 7], [7, 30]], tf.int64)  # 7 twice: counted once
    for regularizer in (keras.regularizers.L2(0.1), keras.regularizers.L1L2(0.01, 0.2)):
        with tf.GradientTape(persistent=True) as tape:
            sparse = optimizers.touched_rows_penalty(regularizer, table, ids)
            full = regularizer(table)
        grad = tape.gradient(sparse, table)
        assert isinstance(grad, tf.IndexedSlices)
        dense = tf.convert_to_tensor(grad).numpy()
        reference = tape.gradient(full, table).numpy()
        rows = [4, 7, 30]
        np.testing.assert_allclose(dense[rows], reference[rows], rtol=1e-6)
        others = np.setdiff1d(np.arange(50), rows)
        np.testing.assert_array_equal(dense[others], 0)
        # The value is the penalty of those rows, each once.
        np.testing.assert_allclose(
            float(sparse), float(regularizer(tf.gather(table, rows))), rtol=1e-6
        )
    assert float(optimizers.touched_rows_penalty(None, table, ids)) == 0.0
