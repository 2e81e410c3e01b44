"""The Keras losses and metrics: sampled in fit, exact in evaluate, against NumPy references."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm
from tests.layer_tables import dense_table
from tests.numpy_reference import sampled_loss as np_sampled_loss

V, D = 30, 5


class FixedSampler:
    """A sampler object returning fixed candidates, so the loss can be checked exactly."""

    def __init__(self, sampled, seen):
        self.sampled = np.asarray(sampled, np.int64)
        self.seen = seen
        self.unique = True

    def sample(self, true_classes, num_true, num_sampled):
        self.seen.append(true_classes)
        q = np.linspace(0.1, 0.9, V).astype("float32")
        return (
            tf.constant(self.sampled),
            tf.gather(tf.constant(q), true_classes),
            tf.constant(q[self.sampled]),
        )


def _np_full_softmax_ce(logits, labels):
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]


def _np_full_sigmoid_ce(logits, labels):
    t = np.zeros_like(logits)
    np.put_along_axis(t, labels[..., None], 1.0, -1)
    return (np.logaddexp(0, logits) - t * logits).sum(-1)


def _model(layer, seq=None):
    inputs = keras.Input((D,) if seq is None else (seq, D))
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("kind", ["softmax", "nce"])
def test_training_loss_equals_numpy_sampled_loss_and_sequence_batches_flatten(kind):
    seen = []
    sampler = FixedSampler([3, 7, 11, 2], seen)
    cls, loss_cls = (
        (tsl.SampledSoftmax, tsloss.SampledSoftmaxLoss)
        if kind == "softmax"
        else (tsl.NCE, tsloss.NCELoss)
    )
    layer = cls(
        V, 4, sampler=sampler, remove_accidental_hits=True, bias_initializer="random_normal"
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, D)).astype("float32")  # [batch, time, dim]
    y = np.array([[3, 1, 4], [1, 5, 9]])
    per_token = loss_cls(reduction=None)(y, layer(x, training=True)).numpy()
    assert per_token.shape == (2, 3)
    w, b = dense_table(layer)
    sampled_values = sampler.sample(tf.constant(y.reshape(-1, 1)), 1, 4)
    expected = np_sampled_loss(
        kind,
        w,
        b,
        y.reshape(-1, 1),
        x.reshape(-1, D),
        [v.numpy() for v in sampled_values],
        True,
        np.ones(6),
    )[0]
    np.testing.assert_allclose(per_token.reshape(-1), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen[0].numpy(), y.reshape(-1, 1))


@pytest.mark.parametrize("kind", ["softmax", "nce", "rank"])
def test_evaluate_equals_numpy_full_loss_perplexity_and_top_k(kind):
    cls, loss_cls = {
        "softmax": (tsl.SampledSoftmax, tsloss.SampledSoftmaxLoss),
        "nce": (tsl.NCE, tsloss.NCELoss),
        "rank": (tsl.RankSampledSoftmax, tsloss.RankSampledSoftmaxLoss),
    }[kind]
    extra = {"num_resampled": 2, "sampler": "uniform"} if kind == "rank" else {}
    # Sharded tables: evaluation must use the same class order as training.
    shards = {
        "softmax": {},
        "nce": {"num_shards": 4, "partition_strategy": "mod"},
        "rank": {"num_shards": 3, "partition_strategy": "div"},
    }[kind]
    layer = cls(V, 4, bias_initializer="random_normal", **extra, **shards)
    model = _model(layer)
    model.compile(
        "sgd",
        loss=loss_cls(),
        metrics=[tsm.Perplexity(), tsm.TopKAccuracy(k=3)],
        weighted_metrics=[tsm.Perplexity(name="weighted_perplexity")],
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, D)).astype("float32") * 2
    y = rng.integers(0, V, size=40)
    sw = rng.uniform(0.0, 2.0, size=40)
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)  # trained shards, not just initial ones
    got = model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    weighted = model.evaluate(x, y, sample_weight=sw, batch_size=40, verbose=0, return_dict=True)
    w, b = dense_table(layer)
    logits = x.astype(np.float64) @ w.T + b
    softmax_ce = _np_full_softmax_ce(logits, y)
    full = softmax_ce if kind != "nce" else _np_full_sigmoid_ce(logits, y)
    top3 = (np.argsort(-logits, -1)[:, :3] == y[:, None]).any(-1)
    np.testing.assert_allclose(got["loss"], full.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["perplexity"], np.exp(softmax_ce.mean()), rtol=1e-5)
    np.testing.assert_allclose(got["top_3_accuracy"], top3.mean(), rtol=1e-6)
    np.testing.assert_allclose(weighted["loss"], (full * sw).mean(), rtol=1e-5)
    np.testing.assert_allclose(weighted["perplexity"], np.exp(softmax_ce.mean()), rtol=1e-5)
    np.testing.assert_allclose(
        weighted["weighted_perplexity"], np.exp((softmax_ce * sw).sum() / sw.sum()), rtol=1e-5
    )


def test_evaluate_with_probabilities_output_and_num_true_2():
    layer = tsl.SampledSoftmax(
        V, 4, num_true=2, output_mode="probabilities", bias_initializer="random_normal"
    )
    model = _model(layer)
    model.compile(loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, D)).astype("float32")
    y = rng.integers(0, V, size=(8, 2))
    got = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    w, b = dense_table(layer)
    logits = x.astype(np.float64) @ w.T + b
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    ce = -0.5 * (np.take_along_axis(log_p, y, -1)).sum(-1)
    np.testing.assert_allclose(got["loss"], ce.mean(), rtol=1e-4)
    np.testing.assert_allclose(got["perplexity"], np.exp(ce.mean()), rtol=1e-4)
    # Training shapes: the [batch, num_true] labels reach the sampler as they are.
    loss = tsloss.SampledSoftmaxLoss()(y, layer(x, training=True))
    assert np.isfinite(loss.numpy())


def test_masked_language_model_trains_and_evaluates_on_valid_tokens_only():
    seq, vocab = 6, 40
    tokens = keras.Input((seq,), dtype="int32")
    hidden = keras.layers.Embedding(vocab, 8, mask_zero=True)(tokens)
    hidden = keras.layers.LSTM(8, return_sequences=True)(hidden)
    layer = tsl.SampledSoftmax(vocab, 6, seed=0)
    model = keras.Model(tokens, layer(hidden))
    model.compile("adam", loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
    rng = np.random.default_rng(3)
    x = rng.integers(1, vocab, size=(16, seq))
    x[:, 4:] = 0  # padding
    y = np.roll(x, -1, axis=1)
    y[:, 3:] = 0
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    got = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    # Reference: logits of the valid positions only.
    hidden_model = keras.Model(tokens, hidden)
    h = hidden_model.predict(x, verbose=0).astype(np.float64)
    w, b = dense_table(layer)
    ce = _np_full_softmax_ce(h @ w.T + b, y)
    valid = x != 0
    np.testing.assert_allclose(got["loss"], ce[valid].mean(), rtol=1e-4)
    np.testing.assert_allclose(got["perplexity"], np.exp(ce[valid].mean()), rtol=1e-4)
    # Changing the padded targets changes nothing.
    y2 = y.copy()
    y2[~valid] = 7
    got2 = model.evaluate(x, y2, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(got2["loss"], got["loss"], rtol=1e-6)


@pytest.mark.parametrize("kind", ["softmax", "nce", "rank"])
def test_training_lowers_held_out_full_loss(kind):
    num_classes, dim = 200, 12
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(num_classes, dim)).astype("float32")
    y = rng.integers(0, num_classes, size=1200)
    x = centers[y] + 0.3 * rng.normal(size=(1200, dim)).astype("float32")
    cls, loss_cls = {
        "softmax": (tsl.SampledSoftmax, tsloss.SampledSoftmaxLoss),
        "nce": (tsl.NCE, tsloss.NCELoss),
        "rank": (tsl.RankSampledSoftmax, tsloss.RankSampledSoftmaxLoss),
    }[kind]
    extra = {"num_resampled": 10, "sampler": "uniform"} if kind == "rank" else {}
    layer = cls(num_classes, 20, seed=1, **extra)
    inputs = keras.Input((dim,))
    model = keras.Model(inputs, layer(keras.layers.Dense(32)(inputs)))
    model.compile(keras.optimizers.Adam(0.01), loss=loss_cls(), metrics=[tsm.Perplexity()])
    before = model.evaluate(x[1000:], y[1000:], verbose=0, return_dict=True)
    model.fit(x[:1000], y[:1000], epochs=5, batch_size=50, verbose=0)
    after = model.evaluate(x[1000:], y[1000:], verbose=0, return_dict=True)
    assert after["loss"] < 0.6 * before["loss"], (before, after)
    if kind != "nce":  # NCE optimizes the full sigmoid loss, not the softmax
        assert after["perplexity"] < 0.3 * before["perplexity"], (before, after)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_and_evaluates_in_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    inputs = keras.Input((D,))
    hidden = keras.layers.Dense(8)(inputs)
    layer = tsl.SampledSoftmax(V, 5, seed=0)
    model = keras.Model(inputs, layer(hidden))
    model.compile("adam", loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
    assert layer.kernel.dtype == "float32"
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, D)).astype("float32")
    y = rng.integers(0, V, size=32)
    before = layer.kernel.numpy().copy()
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(before, layer.kernel.numpy())
    h = keras.Model(inputs, hidden)(x)
    assert h.dtype == policy.split("_")[1]
    train_loss = tsloss.SampledSoftmaxLoss()(y, layer(h, training=True))
    assert train_loss.dtype == tf.float32
    predictions = model.predict(x, verbose=0)
    assert predictions.dtype == np.float32
    got = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    w, b = dense_table(layer)
    expected = _np_full_softmax_ce(np.asarray(h, np.float64) @ w.T + b, y).mean()
    np.testing.assert_allclose(got["loss"], expected, rtol=1e-3)


def test_loss_form_options_override_the_layer_and_by_name():
    seen = []
    layer = tsl.SampledSoftmax(V, 4, sampler="uniform")
    loss = tsloss.SampledSoftmaxLoss(
        num_classes=V,
        num_sampled=3,
        sampler=FixedSampler([0, 1, 2], seen),
        remove_accidental_hits=False,
    )
    x = np.random.default_rng(6).normal(size=(2, D)).astype("float32")
    y = np.array([5, 6])
    value = loss(y, layer(x, training=True)).numpy()
    w, b = dense_table(layer)
    sv = [v.numpy() for v in FixedSampler([0, 1, 2], []).sample(tf.constant([[5], [6]]), 1, 3)]
    expected = np_sampled_loss("softmax", w, b, y[:, None], x, sv, False, np.ones(2))[0].mean()
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    assert len(seen) == 1  # the loss's sampler was used, not the layer's
    for name, cls in [
        ("tf_sampling>SampledSoftmaxLoss", tsloss.SampledSoftmaxLoss),
        ("tf_sampling>NCELoss", tsloss.NCELoss),
        ("tf_sampling>RankSampledSoftmaxLoss", tsloss.RankSampledSoftmaxLoss),
    ]:
        assert isinstance(keras.losses.get(name), cls)
    config = tsloss.RankSampledSoftmaxLoss(num_resampled=2, num_sampled=5).get_config()
    assert tsloss.RankSampledSoftmaxLoss.from_config(config).get_config() == config


def test_compile_with_the_loss_name_trains_the_layer():
    layer = tsl.SampledSoftmax(V, 4, seed=0)
    model = _model(layer)
    model.compile("sgd", loss="tf_sampling>SampledSoftmaxLoss")
    before = layer.kernel.numpy().copy()
    model.fit(np.ones((4, D), "float32"), np.arange(4), verbose=0)
    assert isinstance(model.loss, str) and not np.array_equal(before, layer.kernel.numpy())


def test_explicit_layer_binding_without_a_tag():
    layer = tsl.SampledSoftmax(V, 4, seed=0)
    x = tf.constant(np.random.default_rng(7).normal(size=(3, D)), tf.float32)
    layer(x)
    y = tf.constant([1, 2, 3])
    bound = tsloss.SampledSoftmaxLoss(layer=layer)
    plain_logits = tf.matmul(x, layer.kernel, transpose_b=True) + layer.bias  # untagged
    expected = _np_full_softmax_ce(
        x.numpy().astype(np.float64) @ dense_table(layer)[0].T + dense_table(layer)[1], y.numpy()
    ).mean()
    np.testing.assert_allclose(bound(y, plain_logits).numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="could not find its output layer"):
        tsloss.SampledSoftmaxLoss()(y, plain_logits)
    with pytest.raises(ValueError, match="num_classes=31"):
        tsloss.SampledSoftmaxLoss(num_classes=31)(y, layer(x, training=True))


@pytest.mark.parametrize(
    "y, x_shape, error, words",
    [
        (np.array(["1", "2"]), (2, D), TypeError, ["y_true", "string", "int"]),
        (np.array([1.0, 2.5]), (2, D), tf.errors.InvalidArgumentError, ["labels", "2.5"]),
        (np.array([[[1]], [[2]]]), (2, D), ValueError, ["y_true", "[2, 1, 1]", "[2] or [2, 1]"]),
        (np.zeros((2, 4), "int64"), (2, 3, D), ValueError, ["[2, 4]", "[2, 3] or [2, 3, 1]"]),
        (np.zeros((3,), "int64"), (2, D), ValueError, ["[3]", "[2]"]),
    ],
)
def test_bad_labels_are_clear_errors(y, x_shape, error, words):
    layer = tsl.SampledSoftmax(V, 4)
    x = tf.ones(x_shape)
    for training in (True, False):
        with pytest.raises(error) as info:
            tsloss.SampledSoftmaxLoss()(y, layer(x, training=training))
        for word in words:
            assert word in str(info.value), str(info.value)


def test_whole_float_labels_are_class_ids_as_in_keras():
    # Keras' sparse losses take float32 y_true (a float NumPy target); the ids are its values.
    layer = tsl.SampledSoftmax(V, 4, seed=0)
    x = tf.constant(np.random.default_rng(3).normal(size=(3, D)), tf.float32)
    ints = np.array([1, 7, 29])
    for training in (True, False):
        out = layer(x, training=training)
        tf.random.set_seed(11)  # the same sampled classes for both calls
        expected = tsloss.SampledSoftmaxLoss(seed=5)(ints, out).numpy()
        tf.random.set_seed(11)
        got = tsloss.SampledSoftmaxLoss(seed=5)(ints.astype("float32"), out).numpy()
        np.testing.assert_array_equal(got, expected)


def test_out_of_range_labels_fail_at_run_time():
    layer = tsl.SampledSoftmax(V, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=30"):
        tsloss.SampledSoftmaxLoss()(np.array([1, V]), layer(tf.ones((2, D))))


def test_loss_constructor_validation():
    with pytest.raises(ValueError, match="num_sampled"):
        tsloss.SampledSoftmaxLoss(num_sampled=0)
    with pytest.raises(ValueError, match="num_sampled=8, num_classes=8"):
        tsloss.NCELoss(num_classes=8, num_sampled=8, sampler="uniform")
    with pytest.raises(ValueError, match="num_resampled=5, num_sampled=5"):
        tsloss.RankSampledSoftmaxLoss(num_sampled=5, num_resampled=5)
    with pytest.raises(TypeError, match="layer"):
        tsloss.SampledSoftmaxLoss(layer=keras.layers.Dense(3))


def test_metrics_skip_training_batches_and_work_on_plain_logits():
    metric = tsm.Perplexity()
    layer = tsl.SampledSoftmax(V, 4)
    metric.update_state(np.array([1, 2]), layer(tf.ones((2, D)), training=True))
    # Training batches only: no value at all (left out of fit's logs), never NaN.
    assert metric.result() == {}
    logits = np.random.default_rng(8).normal(size=(4, V)).astype("float32")
    y = np.array([0, 3, 5, 7])
    metric.update_state(y, logits)
    np.testing.assert_allclose(
        metric.result(),
        np.exp(_np_full_softmax_ce(logits.astype(np.float64), y).mean()),
        rtol=1e-5,
    )


def test_nce_loss_from_probabilities_and_eager_fit():
    layer = tsl.NCE(V, 4, output_mode="probabilities", bias_initializer="random_normal")
    assert layer.remove_accidental_hits is False
    assert tsl.SampledSoftmax(V, 4).remove_accidental_hits is True
    model = _model(layer)
    model.compile("sgd", loss=tsloss.NCELoss(), run_eagerly=True)
    rng = np.random.default_rng(9)
    x = rng.normal(size=(8, D)).astype("float32")
    y = rng.integers(0, V, size=8)
    before = layer.kernel.numpy().copy()
    model.fit(x, y, batch_size=4, verbose=0)  # eager tensors carry the tag too
    assert not np.array_equal(before, layer.kernel.numpy())
    got = model.evaluate(x, y, batch_size=8, verbose=0)
    w, b = dense_table(layer)
    expected = _np_full_sigmoid_ce(x.astype(np.float64) @ w.T + b, y).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-4)


# ---------------------------------------------------------------------------
# A loss never guesses what an untagged tensor holds (from test_keras_hardening.py)
# ---------------------------------------------------------------------------


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
        _np_full_softmax_ce(logits.numpy().astype(np.float64), labels).mean(),
        rtol=1e-5,
    )
