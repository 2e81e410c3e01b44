"""Keras-side hardening: never guess a branch, exact values from probabilities, clear messages."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm
from tests.layer_tables import dense_table


def _np_softmax_ce(logits, labels):
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]


def test_explicit_layer_with_num_classes_equal_to_dim_evaluates_exactly():
    # num_classes == dim: the shape cannot tell hidden activations from logits.
    n = 8
    layer = tsl.SampledSoftmax(n, 3, seed=1, bias_initializer="random_normal")
    inputs = keras.Input((n,))
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(layer=layer))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, n)).astype("float32")
    y = rng.integers(0, n, size=16)
    first = model.evaluate(x, y, verbose=0)
    second = model.evaluate(x, y, verbose=0)
    w, b = dense_table(layer)
    expected = _np_softmax_ce(x.astype(np.float64) @ w.T + b, y).mean()
    np.testing.assert_allclose([first, second], [expected, expected], rtol=1e-5)


def test_untagged_tensor_that_could_be_either_is_refused():
    n = 8
    layer = tsl.SampledSoftmax(n, 3)
    layer.build((None, n))
    loss = tsloss.SampledSoftmaxLoss(layer=layer)
    untagged = tf.ones((4, n)) * 1.0
    with pytest.raises(ValueError, match="could be either"):
        loss(tf.constant([0, 1, 2, 3]), untagged)
    # Unambiguous shapes still work without a tag.
    wide = tsl.SampledSoftmax(12, 3, bias_initializer="random_normal")
    wide.build((None, n))
    logits = tf.random.normal((4, 12), seed=3)
    labels = np.array([0, 5, 7, 11])
    np.testing.assert_allclose(
        tsloss.SampledSoftmaxLoss(layer=wide)(labels, logits).numpy(),
        _np_softmax_ce(logits.numpy().astype(np.float64), labels).mean(),
        rtol=1e-5,
    )


@pytest.mark.parametrize("metric_too", [False, True])
def test_probabilities_output_evaluates_tiny_probabilities_exactly(metric_too):
    # The true class gets logit -20 against 0 for the others: p ~ 2e-9, which
    # float32 probabilities clipped at 1e-7 would report as ~16.1.
    v, d = 5, 2
    layer = tsl.SampledSoftmax(
        v,
        2,
        output_mode="probabilities",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([-20.0, 0.0, 0.0, 0.0, 0.0]),
    )
    inputs = keras.Input((d,))
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
    x = np.zeros((4, d), "float32")
    y = np.zeros(4, "int64")
    got = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = _np_softmax_ce(np.tile([-20.0, 0.0, 0.0, 0.0, 0.0], (4, 1)), y)
    assert expected[0] == pytest.approx(20.0 + np.log(4 + np.exp(-20.0)) - 0.0, rel=1e-9)
    np.testing.assert_allclose(got["loss"], expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["perplexity"], np.exp(expected.mean()), rtol=1e-4)


def test_nce_probabilities_output_uses_the_logits_too():
    v, d = 4, 2
    layer = tsl.NCE(
        v,
        2,
        output_mode="probabilities",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([-25.0, 1.0, 2.0, 3.0]),
    )
    inputs = keras.Input((d,))
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", loss=tsloss.NCELoss())
    x = np.zeros((2, d), "float32")
    y = np.zeros(2, "int64")
    logits = np.array([-25.0, 1.0, 2.0, 3.0])
    targets = np.array([1.0, 0, 0, 0])
    expected = (np.logaddexp(0, logits) - targets * logits).sum()
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)


def test_fit_warns_when_a_layer_consumes_the_heads_training_output():
    v, d = 20, 6
    head = tsl.SampledSoftmax(v, 4)
    inputs = keras.Input((d,))
    after = keras.layers.Dense(3, name="after_head")(head(inputs))
    model = keras.Model(inputs, after)
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    x = np.ones((8, d), "float32")
    with pytest.warns(UserWarning, match=r"returns its input.*after_head"):
        with pytest.raises(ValueError):
            model.fit(x, np.zeros(8), verbose=0)


def test_head_as_the_output_trains_without_the_warning(recwarn):
    head = tsl.SampledSoftmax(20, 4)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss())
    model.fit(np.ones((8, 6), "float32"), np.zeros(8, "int64"), verbose=0)
    assert not [w for w in recwarn if "returns its input" in str(w.message)]


def test_training_logs_hold_no_metric_values_and_val_values_are_real():
    v, d = 30, 6
    head = tsl.SampledSoftmax(v, 4, seed=2)
    inputs = keras.Input((d,))
    model = keras.Model(inputs, head(inputs))
    model.compile(
        "sgd",
        loss=tsloss.SampledSoftmaxLoss(),
        metrics=[tsm.Perplexity(), tsm.TopKAccuracy(k=5)],
    )
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, d)).astype("float32")
    y = rng.integers(0, v, size=32)
    history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0).history
    # Not measured on training batches: absent, never NaN or a plausible 0 or 1.
    assert "perplexity" not in history and "top_5_accuracy" not in history
    assert 1.0 < history["val_perplexity"][0] < 10 * v
    assert 0.0 <= history["val_top_5_accuracy"][0] <= 1.0


def test_metrics_and_loss_config_round_trip_and_bad_k():
    metric = tsm.TopKAccuracy(k=3, name="top3")
    again = tsm.TopKAccuracy.from_config(metric.get_config())
    assert (again.k, again.name) == (3, "top3")
    ppl = tsm.Perplexity.from_config(tsm.Perplexity(num_true=2).get_config())
    assert ppl.num_true == 2
    with pytest.raises(ValueError, match="k"):
        tsm.TopKAccuracy(k=0)
    with pytest.raises(TypeError, match="num_true"):
        tsm.Perplexity(num_true="2")


def test_a_trained_model_and_its_table_are_freed_when_dropped():
    # Keras' traced functions keep graph tensors, and the tags on them point
    # at the head: only weakly, or every model's table would stay in memory.
    import gc
    import weakref

    def train_once():
        inputs = keras.Input((6,))
        head = tsl.SampledSoftmax(500, 8)
        model = keras.Model(inputs, head(inputs))
        model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
        x, y = np.ones((8, 6), "float32"), np.arange(8)
        model.fit(x, y, verbose=0)
        model.evaluate(x, y, verbose=0)
        return weakref.ref(head), weakref.ref(head.kernel_shards[0])

    head, kernel = train_once()
    gc.collect()
    assert head() is None and kernel() is None
