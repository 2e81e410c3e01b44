"""Perplexity / TopKAccuracy with padding_id, and the losses' dense-logits path (issue 26).

Padded ``y_true`` ``[batch, max_true]``: example i's n_i real labels share the
target mass 1/n_i. Everything is checked against a per-example NumPy
reference, on a head's tagged output (exact from its table in class blocks)
and on plain (untagged) logits.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.nn as tsn
from tf_sampling import metrics
from tf_sampling._core import full_softmax

V, D, MAX_TRUE = 40, 6, 3
# Mixed n_i (1 and the maximum); a class listed twice counts twice, as in the losses.
ROWS = [[4], [7, 2, 9], [11, 5], [0], [13, 8, 21], [3, 3]]


def _padded(rows, width=MAX_TRUE):
    return np.array([r + [-1] * (width - len(r)) for r in rows], np.int64)


def _head(seed=0, num_true=MAX_TRUE, output_mode="logits"):
    """A built SampledSoftmax head (3 class blocks) with known weights, its input and logits."""
    rng = np.random.default_rng(seed)
    head = tsl.SampledSoftmax(
        V, 8, num_true=num_true, seed=1, chunk_size=16, output_mode=output_mode
    )
    x = rng.normal(size=(len(ROWS), D)).astype(np.float32)
    head(x)
    w = rng.normal(size=(V, D)).astype(np.float32)
    b = rng.normal(size=(V,)).astype(np.float32)
    # Some true classes score high: top-k hits at several places, a miss elsewhere.
    b[[7, 21, 5]] = [12.0, 11.0, 10.0]
    head.kernel.assign(w)
    head.bias.assign(b)
    return head, x, x @ w.T + b


def _ref_cross_entropy(logits, rows, objective="softmax"):
    """Per-example exact loss, each example alone with target 1/n_i per real label."""
    out = []
    for z, row in zip(logits.astype(np.float64), rows, strict=True):
        t = np.zeros_like(z)
        for c in row:
            t[c] += 1.0 / len(row)
        if objective == "softmax":
            m = z.max()
            out.append(m + np.log(np.exp(z - m).sum()) - (t * z).sum())
        else:
            out.append((np.maximum(z, 0) - t * z + np.log1p(np.exp(-np.abs(z)))).sum())
    return np.array(out)


def _ref_any_hit(logits, rows, k):
    """1 where any real label is among the k best classes (ties to the lower id)."""
    hits = []
    for z, row in zip(logits, rows, strict=True):
        top = sorted(range(len(z)), key=lambda c: (-z[c], c))[:k]
        hits.append(float(any(c in top for c in row)))
    return np.array(hits)


def _value(metric, y_true, y_pred):
    metric.reset_state()
    metric.update_state(y_true, y_pred)
    return float(metric.result())


# ----------------------------------------------------------------- Perplexity


def test_perplexity_matches_numpy_on_head_output_and_on_logits():
    head, x, logits = _head()
    y = _padded(ROWS)
    want = np.exp(_ref_cross_entropy(logits, ROWS).mean())
    m = metrics.Perplexity(padding_id=-1)
    tagged = _value(m, y, head(x))
    untagged = _value(m, y, tf.constant(logits))
    np.testing.assert_allclose(tagged, want, rtol=1e-5)
    np.testing.assert_allclose(untagged, want, rtol=1e-5)
    np.testing.assert_allclose(tagged, untagged, rtol=1e-6)


def test_perplexity_on_plain_logits_of_a_sequence_model():
    # [batch, time, classes] logits, [batch, time, max_true] padded labels; max_true from y_true.
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 3, V)).astype(np.float32)
    y = _padded(ROWS).reshape(2, 3, MAX_TRUE)
    want = np.exp(_ref_cross_entropy(logits.reshape(6, V), ROWS).mean())
    got = _value(metrics.Perplexity(padding_id=-1), y, tf.constant(logits))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_perplexity_full_rows_equal_the_fixed_path():
    full_rows = [[4, 1, 9], [7, 2, 9], [11, 5, 5], [0, 3, 1], [13, 8, 21], [3, 3, 3]]
    head, x, logits = _head(1)
    y = np.array(full_rows, np.int64)
    fixed, padded = metrics.Perplexity(), metrics.Perplexity(padding_id=-1)
    assert _value(padded, y, head(x)) == _value(fixed, y, head(x))
    plain = metrics.Perplexity(num_true=MAX_TRUE)
    assert _value(padded, y, tf.constant(logits)) == _value(plain, y, tf.constant(logits))
    np.testing.assert_allclose(
        _value(padded, y, head(x)), np.exp(_ref_cross_entropy(logits, full_rows).mean()), 1e-5
    )


# --------------------------------------------------------------- TopKAccuracy


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_accuracy_any_real_label(k):
    head, x, logits = _head()
    y = _padded(ROWS)
    want = _ref_any_hit(logits, ROWS, k).mean()
    m = metrics.TopKAccuracy(k, padding_id=-1)
    tagged = _value(m, y, head(x))
    untagged = _value(m, y, tf.constant(logits))
    np.testing.assert_allclose(tagged, want, rtol=1e-6)
    np.testing.assert_allclose(untagged, want, rtol=1e-6)
    if k == 5:
        # Not all hits and not all misses; hits through labels other than the first.
        assert 0 < want < 1
        first_only = _ref_any_hit(logits, [r[:1] for r in ROWS], k).mean()
        assert want > first_only


def test_top_k_accuracy_one_label_equals_the_fixed_path():
    rows = [[r[0]] for r in ROWS]
    head, x, logits = _head(2, num_true=1)
    y = np.array(rows, np.int64)
    for k in (1, 3):
        fixed, padded = metrics.TopKAccuracy(k), metrics.TopKAccuracy(k, padding_id=-1)
        assert _value(padded, y, head(x)) == _value(fixed, y, head(x))
        assert _value(padded, y, tf.constant(logits)) == _value(fixed, y, tf.constant(logits))


def test_top_k_accuracy_nan_row_is_no_hit():
    _, _, logits = _head()
    logits = logits.copy()
    logits[1] = np.nan
    got = metrics.TopKAccuracy(5, padding_id=-1)
    got.update_state(_padded(ROWS), tf.constant(logits))
    want = _ref_any_hit(logits, ROWS, 5)
    want[1] = 0.0
    np.testing.assert_allclose(float(got.result()), want.mean(), rtol=1e-6)


# ------------------------------------------------------ config and bad input


def test_get_config_round_trip():
    for m in (metrics.Perplexity(padding_id=-1), metrics.TopKAccuracy(3, padding_id=-1)):
        restored = type(m).from_config(m.get_config())
        assert restored.padding_id == -1
        assert restored.get_config() == m.get_config()
        assert keras.metrics.deserialize(keras.metrics.serialize(m)).padding_id == -1
    assert metrics.Perplexity().get_config()["padding_id"] is None
    old = {"name": "top_5_accuracy", "dtype": "float32", "k": 5}  # saved before padding_id
    assert metrics.TopKAccuracy.from_config(old).padding_id is None


@pytest.mark.parametrize("make", [metrics.Perplexity, lambda **kw: metrics.TopKAccuracy(3, **kw)])
def test_bad_input(make):
    with pytest.raises(TypeError, match="padding_id"):
        make(padding_id=1.5)
    head, x, logits = _head()
    y = _padded(ROWS)
    for y_pred in (head(x), tf.constant(logits)):
        with pytest.raises(ValueError, match=r"padding_id.*num_classes=40.*Received: padding_id=3"):
            make(padding_id=3).update_state(np.where(y < 0, 3, y), y_pred)
        with pytest.raises(tf.errors.InvalidArgumentError, match="at least one true label"):
            make(padding_id=-1).update_state(np.where(np.arange(6)[:, None] == 2, -1, y), y_pred)
        with pytest.raises(tf.errors.InvalidArgumentError):
            make(padding_id=-1).update_state(np.where(y == 9, V, y), y_pred)  # out of range
    # The head's num_true is max_true: a y_true of another width is refused, naming y_true.
    with pytest.raises(ValueError, match=r"y_true.*num_true=3; got shape \[6, 4\]"):
        make(padding_id=-1).update_state(_padded(ROWS, 4), head(x))


# ---------------------------------------------- the losses on dense logits


@pytest.mark.parametrize(
    "loss_cls,objective",
    [(tsloss.SampledSoftmaxLoss, "softmax"), (tsloss.NCELoss, "sigmoid")],
)
def test_loss_on_untagged_logits_equals_the_per_example_reference(loss_cls, objective):
    head, x, logits = _head()
    y = _padded(ROWS)
    want = _ref_cross_entropy(logits, ROWS, objective)
    loss = loss_cls(padding_id=-1, layer=head, reduction=None)
    got = loss(y, tf.constant(logits)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Full rows: as the fixed path, bit for bit.
    full = np.array([[4, 1, 9], [7, 2, 9], [11, 5, 5], [0, 3, 1], [13, 8, 21], [3, 3, 3]])
    fixed = loss_cls(layer=head, reduction=None)
    np.testing.assert_array_equal(
        loss(full, tf.constant(logits)).numpy(), fixed(full, tf.constant(logits)).numpy()
    )


def test_loss_on_untagged_probabilities():
    head, _, logits = _head(output_mode="probabilities")
    probs = tf.nn.softmax(logits)
    loss = tsloss.SampledSoftmaxLoss(padding_id=-1, layer=head, reduction=None)
    got = loss(_padded(ROWS), probs).numpy()
    # Untagged probabilities give their own logits, log(p) with p clipped to [1e-7, 1 - 1e-7].
    own_logits = np.log(np.clip(probs.numpy().astype(np.float64), 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(got, _ref_cross_entropy(own_logits, ROWS), rtol=1e-4)


def test_loss_gradient_on_untagged_logits():
    head, _, logits = _head()
    z = tf.constant(logits)
    loss = tsloss.SampledSoftmaxLoss(padding_id=-1, layer=head, reduction=None)
    with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.reduce_sum(loss(_padded(ROWS), z) * tf.range(1.0, 7.0))
    grad = tape.gradient(total, z).numpy()
    targets = np.zeros_like(logits)
    for i, row in enumerate(ROWS):
        for c in row:
            targets[i, c] += 1.0 / len(row)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    want = (softmax - targets) * np.arange(1.0, 7.0)[:, None]
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_dense_loss_allowed_empty_row(objective):
    # nn.label_set(..., allow_empty=True): the row's loss is 0, with no gradient.
    _, _, logits = _head()
    z = tf.constant(logits)
    rows = [[], *ROWS[1:]]
    labels = tsn.label_set(_padded(rows), padding_id=-1, allow_empty=True)
    with tf.GradientTape() as tape:
        tape.watch(z)
        per_row = full_softmax.full_cross_entropy(labels, z, MAX_TRUE, V, objective)
    grad = tape.gradient(per_row, z).numpy()
    assert per_row.numpy()[0] == 0.0
    assert not np.any(grad[0])
    want = _ref_cross_entropy(logits[1:], rows[1:], objective)
    np.testing.assert_allclose(per_row.numpy()[1:], want, rtol=1e-5)


# ------------------------------------------------------ compile + evaluate


def test_evaluate_with_padded_metrics_on_a_sampled_softmax_head():
    head, x, logits = _head()
    y = _padded(ROWS)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    model.compile(
        "sgd",
        loss=tsloss.SampledSoftmaxLoss(padding_id=-1),
        metrics=[metrics.Perplexity(padding_id=-1), metrics.TopKAccuracy(2, padding_id=-1)],
    )
    got = model.evaluate(x, y, batch_size=len(ROWS), verbose=0, return_dict=True)
    ce = _ref_cross_entropy(logits, ROWS)
    np.testing.assert_allclose(got["loss"], ce.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["perplexity"], np.exp(ce.mean()), rtol=1e-5)
    np.testing.assert_allclose(got["top_2_accuracy"], _ref_any_hit(logits, ROWS, 2).mean())


def test_fixed_top_k_beside_a_padded_loss_does_not_reuse_its_rank():
    # The padded loss's pass over the table caches a rank keyed by its padding_id;
    # TopKAccuracy without padding_id computes its own (first target, in_top_k).
    full_rows = [[4, 1, 9], [7, 2, 9], [11, 5, 5], [0, 3, 1], [13, 8, 21], [21, 3, 3]]
    head, x, logits = _head()
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    model.compile(
        "sgd",
        loss=tsloss.SampledSoftmaxLoss(padding_id=-1),
        metrics=[metrics.TopKAccuracy(2), metrics.Perplexity(padding_id=-1)],
    )
    y = np.array(full_rows, np.int64)
    got = model.evaluate(x, y, batch_size=len(ROWS), verbose=0, return_dict=True)
    first = tf.math.in_top_k(y[:, 0].astype(np.int32), logits, 2).numpy()
    np.testing.assert_allclose(got["top_2_accuracy"], first.mean())
    assert 0 < first.mean() < 1
    np.testing.assert_allclose(
        got["perplexity"], np.exp(_ref_cross_entropy(logits, full_rows).mean()), rtol=1e-5
    )
