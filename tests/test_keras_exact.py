"""Exact evaluation and exact training from the head's input and table, in class blocks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm
from tests.layer_tables import dense_table
from tests.test_losses import _np_full_softmax_ce

V, D = 23, 6


def _np_log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_softmax_ce(logits, labels):
    # labels [n, num_true]: target 1/num_true on each true class.
    return -np.take_along_axis(_np_log_softmax(logits), labels, -1).mean(-1)


def _np_sigmoid_ce(logits, labels):
    t = np.zeros_like(logits)
    for j in range(labels.shape[1]):
        np.add.at(t, (np.arange(len(labels)), labels[:, j]), 1.0 / labels.shape[1])
    return (np.logaddexp(0, logits) - t * logits).sum(-1)


CASES = {
    # name: (layer class, loss class, layer kwargs)
    "softmax-div": (tsl.SampledSoftmax, tsloss.SampledSoftmaxLoss, {"num_shards": 3}),
    "softmax-mod-nt2": (
        tsl.SampledSoftmax,
        tsloss.SampledSoftmaxLoss,
        {"num_shards": 4, "partition_strategy": "mod", "num_true": 2},
    ),
    "nce-mod": (tsl.NCE, tsloss.NCELoss, {"num_shards": 2, "partition_strategy": "mod"}),
    "probabilities": (
        tsl.SampledSoftmax,
        tsloss.SampledSoftmaxLoss,
        {"output_mode": "probabilities"},
    ),
}


@pytest.mark.parametrize("chunk_size", [5, 8, None])
@pytest.mark.parametrize("case", sorted(CASES))
def test_blockwise_evaluate_equals_numpy(case, chunk_size):
    layer_cls, loss_cls, kwargs = CASES[case]
    layer = layer_cls(V, 4, bias_initializer="random_normal", chunk_size=chunk_size, **kwargs)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(
        "sgd",
        loss=loss_cls(),
        metrics=[tsm.Perplexity(), tsm.TopKAccuracy(k=3)],
        weighted_metrics=[tsm.Perplexity(name="weighted_perplexity")],
    )
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, D)).astype("float32") * 2
    num_true = layer.num_true
    y = rng.integers(0, V, size=(12, num_true))
    sw = rng.uniform(0.1, 2.0, size=12)
    got = model.evaluate(x, y, sample_weight=sw, batch_size=6, verbose=0, return_dict=True)
    w, b = dense_table(layer)
    logits = x.astype(np.float64) @ w.T + b
    softmax_ce = _np_softmax_ce(logits, y)
    full = _np_sigmoid_ce(logits, y) if layer.objective == "sigmoid" else softmax_ce
    top3 = (np.argsort(-logits, -1)[:, :3] == y[:, :1]).any(-1)
    np.testing.assert_allclose(got["loss"], (full * sw).mean(), rtol=1e-5)
    np.testing.assert_allclose(got["perplexity"], np.exp(softmax_ce.mean()), rtol=1e-5)
    np.testing.assert_allclose(
        got["weighted_perplexity"], np.exp((softmax_ce * sw).sum() / sw.sum()), rtol=1e-5
    )
    np.testing.assert_allclose(got["top_3_accuracy"], top3.mean(), rtol=1e-6)


def test_sequence_outputs_with_a_mask_evaluate_blockwise():
    seq, vocab = 5, 31
    tokens = keras.Input((seq,), dtype="int32")
    hidden = keras.layers.Embedding(vocab, 8, mask_zero=True)(tokens)
    layer = tsl.SampledSoftmax(vocab, 6, chunk_size=7, bias_initializer="random_normal")
    model = keras.Model(tokens, layer(hidden))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
    rng = np.random.default_rng(6)
    x = rng.integers(1, vocab, size=(4, seq))
    x[:, 3:] = 0
    y = rng.integers(0, vocab, size=(4, seq))
    got = model.evaluate(x, y, verbose=0, return_dict=True)
    h = keras.Model(tokens, hidden).predict(x, verbose=0).astype(np.float64)
    w, b = dense_table(layer)
    ce = _np_softmax_ce((h @ w.T + b).reshape(-1, vocab), y.reshape(-1, 1)).reshape(4, seq)
    valid = x != 0
    np.testing.assert_allclose(got["loss"], ce[valid].mean(), rtol=1e-5)
    np.testing.assert_allclose(got["perplexity"], np.exp(ce[valid].mean()), rtol=1e-5)


@pytest.mark.parametrize("head", ["softmax", "nce"])
def test_full_softmax_loss_trains_with_the_exact_loss_and_gradient(head):
    layer_cls = tsl.SampledSoftmax if head == "softmax" else tsl.NCE
    layer = layer_cls(V, 4, chunk_size=6, num_shards=2, bias_initializer="random_normal")
    x = tf.constant(np.random.default_rng(7).normal(size=(5, D)), tf.float32)
    y = np.array([0, 4, 9, 22, 13])
    loss_fn = tsloss.FullSoftmaxLoss()
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(y, layer(x, training=True))
    grads = tape.gradient(loss, [x, *layer.kernel_shards])
    w, b = dense_table(layer)
    logits = x.numpy().astype(np.float64) @ w.T + b
    labels = y[:, None]
    if head == "softmax":
        expected = _np_softmax_ce(logits, labels).mean()
        d_logits = np.exp(_np_log_softmax(logits))
        d_logits[np.arange(5), y] -= 1.0
    else:
        expected = _np_sigmoid_ce(logits, labels).mean()
        d_logits = 1 / (1 + np.exp(-logits))
        d_logits[np.arange(5), y] -= 1.0
    d_logits /= 5
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(grads[0].numpy(), d_logits @ w, rtol=1e-4, atol=1e-6)
    dense_w_grad = np.concatenate([tf.convert_to_tensor(g).numpy() for g in grads[1:]])
    np.testing.assert_allclose(dense_w_grad, d_logits.T @ x.numpy(), rtol=1e-4, atol=1e-6)


def test_full_softmax_loss_fit_lowers_the_exact_loss_and_saves():
    layer = tsl.SampledSoftmax(V, 4, chunk_size=8)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(keras.layers.Dense(D)(inputs)))
    model.compile(keras.optimizers.Adam(0.05), loss=tsloss.FullSoftmaxLoss())
    rng = np.random.default_rng(8)
    x = rng.normal(size=(64, D)).astype("float32")
    y = (np.abs(x[:, 0] * 7).astype(int)) % V
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.7 * before, (before, after)
    config = keras.losses.deserialize(keras.losses.serialize(tsloss.FullSoftmaxLoss()))
    assert isinstance(config, tsloss.FullSoftmaxLoss)


def test_chunk_size_is_a_checked_config_argument():
    layer = tsl.NCE(V, 4, chunk_size=16)
    assert tsl.NCE.from_config(layer.get_config()).chunk_size == 16
    with pytest.raises(ValueError, match="chunk_size"):
        tsl.SampledSoftmax(V, 4, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        tsl.SampledSoftmax(V, 4, chunk_size=2.5)


# ---------------------------------------------------------------------------
# Exact values where the output alone could mislead (from test_keras_hardening.py)
# ---------------------------------------------------------------------------


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
    expected = _np_full_softmax_ce(x.astype(np.float64) @ w.T + b, y).mean()
    np.testing.assert_allclose([first, second], [expected, expected], rtol=1e-5)


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
    expected = _np_full_softmax_ce(np.tile([-20.0, 0.0, 0.0, 0.0, 0.0], (4, 1)), y)
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
