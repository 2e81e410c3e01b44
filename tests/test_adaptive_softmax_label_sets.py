"""Adaptive softmax with a variable number of labels per example (issue 26).

Reference: example ``i``'s loss is ``-(1 / n_i) * sum_k log p(y_ik)`` with
``log p`` the exact log-probabilities (NumPy for the values; for gradients,
``adaptive_log_softmax``, itself checked against NumPy in
``test_adaptive_softmax.py``, read at each example's labels).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling as ts
from tf_sampling import nn as tsn

V, D = 13, 6
CUTOFFS = [4, 8]  # shortlist [0, 4), clusters [4, 8) and [8, 13)
WIDTHS = [3, 1]
# n_i from 1 to 4 (max): shortlist only, one cluster, both clusters, all
# three parts, a class listed twice (it counts twice), a tail-only row.
ROWS = [[1], [5, 9, 2], [12, 11], [6, 4, 7, 0], [3, 3], [10]]
MAX_TRUE = 4


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    sizes = [4, 5]
    return {
        "head_weights": rng.normal(size=(CUTOFFS[0] + 2, D)).astype(dtype),
        "head_biases": rng.normal(size=CUTOFFS[0] + 2).astype(dtype),
        "tail_projections": [rng.normal(size=(D, w)).astype(dtype) for w in WIDTHS],
        "tail_weights": [
            rng.normal(size=(s, w)).astype(dtype) for s, w in zip(sizes, WIDTHS, strict=True)
        ],
        "tail_biases": [rng.normal(size=s).astype(dtype) for s in sizes],
    }


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def numpy_log_prob(p, x):
    head = _log_softmax(x @ p["head_weights"].T + p["head_biases"])
    out = [head[:, : CUTOFFS[0]]]
    for i in range(len(CUTOFFS)):
        tail = (x @ p["tail_projections"][i]) @ p["tail_weights"][i].T + p["tail_biases"][i]
        out.append(_log_softmax(tail) + head[:, CUTOFFS[0] + i : CUTOFFS[0] + i + 1])
    return np.concatenate(out, 1)


def numpy_loss(p, x, rows):
    log_p = numpy_log_prob(p, x)
    return np.array([-np.mean([log_p[i, c] for c in row]) for i, row in enumerate(rows)])


def padded(rows, width=MAX_TRUE, fill=-1):
    return np.array([row + [fill] * (width - len(row)) for row in rows], np.int64)


def _args(variables):
    return (
        variables["head_weights"],
        variables["head_biases"],
        variables["tail_projections"],
        variables["tail_weights"],
        variables["tail_biases"],
    )


def _variables(p):
    return tf.nest.map_structure(tf.Variable, p)


def loss_and_grads(p, x, labels, fn=None):
    """Losses and gradients (inputs, head weights, tail table 1) of the mean loss."""
    variables = _variables(p)
    x = tf.Variable(x)

    def run(labels):
        with tf.GradientTape() as tape:
            loss = tsn.adaptive_softmax_loss(*_args(variables), labels, x, CUTOFFS, V)
            total = tf.reduce_mean(loss)
        watched = [x, variables["head_weights"], variables["tail_weights"][1]]
        return loss, tape.gradient(total, watched)

    loss, grads = run(labels) if fn is None else fn(run, labels)
    return loss.numpy(), [g.numpy() for g in grads]


def reference_grads(p, x, rows):
    """Gradients of the mean per-example reference, from adaptive_log_softmax."""
    variables = _variables(p)
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        log_p = tsn.adaptive_log_softmax(*_args(variables), x, CUTOFFS, V)
        per_row = [-tf.reduce_mean(tf.gather(log_p[i], row)) for i, row in enumerate(rows)]
        total = tf.reduce_mean(tf.stack(per_row))
    watched = [x, variables["head_weights"], variables["tail_weights"][1]]
    return [g.numpy() for g in tape.gradient(total, watched)]


@pytest.fixture(scope="module")
def setup():
    p = make_params()
    x = np.random.default_rng(1).normal(size=(len(ROWS), D))
    return p, x


def test_ragged_matches_per_example_reference(setup):
    p, x = setup
    loss, grads = loss_and_grads(p, x, tf.ragged.constant(ROWS, dtype=tf.int64))
    np.testing.assert_allclose(loss, numpy_loss(p, x, ROWS), rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, reference_grads(p, x, ROWS), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # The tail table of cluster 1 gets a gradient only from its labels' rows.
    assert np.abs(grads[2]).sum() > 0


def test_ragged_padded_and_mask_forms_agree(setup):
    p, x = setup
    ragged, _ = loss_and_grads(p, x, tf.ragged.constant(ROWS, dtype=tf.int64))
    with_id, grads_id = loss_and_grads(p, x, tsn.label_set(padded(ROWS), padding_id=-1))
    # A mask only: whatever the padded slots hold (here an id out of range) is unread.
    mask = padded(ROWS) >= 0
    with_mask, grads_mask = loss_and_grads(p, x, tsn.label_set(padded(ROWS, fill=99), mask=mask))
    np.testing.assert_array_equal(ragged, with_id)
    np.testing.assert_array_equal(with_id, with_mask)
    for a, b in zip(grads_id, grads_mask, strict=True):
        np.testing.assert_array_equal(a, b)
    # A wider padding than the longest row changes nothing but the width.
    wider, _ = loss_and_grads(p, x, tsn.label_set(padded(ROWS, 6), padding_id=-1))
    np.testing.assert_allclose(wider, with_id, rtol=1e-14)


def test_ragged_in_a_graph_has_no_static_width(setup):
    p, x = setup
    variables = _variables(p)

    @tf.function
    def loss_of(values, row_lengths):
        labels = tf.RaggedTensor.from_row_lengths(values, row_lengths)
        return tsn.adaptive_softmax_loss(*_args(variables), labels, x, CUTOFFS, V)

    values = np.concatenate(ROWS).astype(np.int64)
    lengths = np.array([len(r) for r in ROWS], np.int64)
    got = loss_of(tf.constant(values), tf.constant(lengths)).numpy()
    np.testing.assert_allclose(got, numpy_loss(p, x, ROWS), rtol=1e-12)


def test_full_rows_of_width_one_equal_the_single_label_path(setup):
    p, x = setup
    first = np.array([row[0] for row in ROWS], np.int64)
    fixed, fixed_grads = loss_and_grads(p, x, first)
    for labels in (
        tsn.label_set(first[:, None], padding_id=-1),
        tf.ragged.constant([[c] for c in first], dtype=tf.int64),
    ):
        got, grads = loss_and_grads(p, x, labels)
        np.testing.assert_array_equal(got, fixed)
        for a, b in zip(grads, fixed_grads, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(fixed, numpy_loss(p, x, [[c] for c in first]), rtol=1e-12)


def test_one_label_per_row_at_a_larger_width_equals_the_single_label_path(setup):
    p, x = setup
    first = np.array([row[0] for row in ROWS], np.int64)
    fixed, fixed_grads = loss_and_grads(p, x, first)
    got, grads = loss_and_grads(p, x, tsn.label_set(padded([[c] for c in first]), padding_id=-1))
    np.testing.assert_allclose(got, fixed, rtol=1e-13)
    for a, b in zip(grads, fixed_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("width", [1, MAX_TRUE])
def test_allow_empty_row_has_loss_and_gradient_zero(setup, width):
    p, x = setup
    rows = [r[:width] for r in ROWS]
    rows[2] = []
    labels = tsn.label_set(padded(rows, width), padding_id=-1, allow_empty=True)
    variables = _variables(p)
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tsn.adaptive_softmax_loss(*_args(variables), labels, xv, CUTOFFS, V)
        total = tf.reduce_sum(loss)
    grad = tape.gradient(total, xv).numpy()
    assert loss.numpy()[2] == 0.0
    assert not grad[2].any()
    kept = [i for i in range(len(rows)) if rows[i]]
    want = numpy_loss(p, x[kept], [rows[i] for i in kept])
    np.testing.assert_allclose(loss.numpy()[kept], want, rtol=1e-12)


def test_a_row_without_label_is_an_error_by_default(setup):
    p, x = setup
    rows = [list(r) for r in ROWS]
    rows[1] = []
    args = _args(p)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one true label"):
        tsn.adaptive_softmax_loss(*args, tsn.label_set(padded(rows), padding_id=-1), x, CUTOFFS, V)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one true label"):
        tsn.adaptive_softmax_loss(*args, tf.ragged.constant(rows, tf.int64), x, CUTOFFS, V)


def test_jit_compile_equals_eager_on_the_padded_form(setup):
    p, x = setup

    def compiled(run, labels):
        return tf.function(run, jit_compile=True)(labels)

    for width, rows in ((MAX_TRUE, ROWS), (1, [r[:1] for r in ROWS])):
        labels = tsn.label_set(padded(rows, width), padding_id=-1)
        eager, eager_grads = loss_and_grads(p, x, labels)
        xla, xla_grads = loss_and_grads(p, x, labels, fn=compiled)
        np.testing.assert_allclose(xla, eager, rtol=1e-12)
        for a, b in zip(xla_grads, eager_grads, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # Asserts are dropped under XLA: a row without label (not allowed) is NaN.
    rows = [list(r) for r in ROWS]
    rows[0] = []
    args = _args(p)
    fn = tf.function(
        lambda y: tsn.adaptive_softmax_loss(*args, tsn.label_set(y, padding_id=-1), x, CUTOFFS, V),
        jit_compile=True,
    )
    out = fn(tf.constant(padded(rows))).numpy()
    assert np.isnan(out[0]) and np.isfinite(out[1:]).all()


def test_bad_input_gets_a_clear_error(setup):
    p, x = setup
    args = _args(p)
    with pytest.raises(ValueError, match="padding_id"):
        tsn.adaptive_softmax_loss(
            *args, tsn.label_set(padded(ROWS, fill=3), padding_id=3), x, CUTOFFS, V
        )
    with pytest.raises(ValueError, match="batch size"):
        tsn.adaptive_softmax_loss(
            *args, tsn.label_set(padded(ROWS[:3]), padding_id=-1), x, CUTOFFS, V
        )
    with pytest.raises(tf.errors.InvalidArgumentError):
        bad = padded(ROWS)
        bad[1, 1] = V
        tsn.adaptive_softmax_loss(*args, tsn.label_set(bad, padding_id=-1), x, CUTOFFS, V)
    with pytest.raises(tf.errors.InvalidArgumentError):  # another negative id than the padding
        bad = padded(ROWS)
        bad[1, 1] = -2
        tsn.adaptive_softmax_loss(*args, tsn.label_set(bad, padding_id=-1), x, CUTOFFS, V)
    with pytest.raises(TypeError, match="padding_id"):
        ts.losses.AdaptiveSoftmaxLoss(padding_id=1.5)
    with pytest.raises(ValueError, match="padding_id"):
        ts.losses.AdaptiveSoftmaxLoss(allow_empty=True)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((D,))
    head = ts.layers.AdaptiveSoftmax(V, cutoffs=CUTOFFS, div_value=2.0)
    return keras.Model(inputs, head(inputs)), head


def _head_loss(head, x, labels):
    return tsn.adaptive_softmax_loss(
        *ts._keras.adaptive_head.parameters(head), labels, x, CUTOFFS, V
    ).numpy()


def test_keras_fit_and_evaluate_equal_the_functional_loss(setup):
    _, x = setup
    x = x.astype(np.float32)
    y = padded(ROWS)
    model, head = _model()
    model.compile(
        keras.optimizers.SGD(0.5),
        loss=ts.losses.AdaptiveSoftmaxLoss(padding_id=-1),
        metrics=[
            ts.metrics.Perplexity(padding_id=-1),
            ts.metrics.TopKAccuracy(k=2, padding_id=-1),
        ],
    )
    labels = tsn.label_set(y, padding_id=-1)
    before = _head_loss(head, x, labels)
    with tf.GradientTape() as tape:
        mean = tf.reduce_mean(
            tsn.adaptive_softmax_loss(
                *ts._keras.adaptive_head.parameters(head), labels, x, CUTOFFS, V
            )
        )
    step = -0.5 * tape.gradient(mean, head.tail_kernels[1]).numpy()
    kernel = head.tail_kernels[1].numpy()
    history = model.fit(x, y, batch_size=len(ROWS), epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(history.history["loss"][0], before.mean(), rtol=1e-5)
    np.testing.assert_allclose(head.tail_kernels[1].numpy(), kernel + step, rtol=1e-5, atol=1e-7)

    result = model.evaluate(x, y, batch_size=len(ROWS), verbose=0, return_dict=True)
    after = _head_loss(head, x, labels)
    np.testing.assert_allclose(result["loss"], after.mean(), rtol=1e-5)
    np.testing.assert_allclose(result["perplexity"], np.exp(after.mean()), rtol=1e-5)
    log_p = model.predict(x, verbose=0)
    top = np.argsort(-log_p, 1, kind="stable")[:, :2]
    hits = [bool(set(top[i]) & set(row)) for i, row in enumerate(ROWS)]
    np.testing.assert_allclose(result["top_2_accuracy"], np.mean(hits), rtol=1e-6)


def test_keras_allow_empty_and_config(setup):
    _, x = setup
    x = x.astype(np.float32)
    rows = [list(r) for r in ROWS]
    rows[3] = []
    y = padded(rows)
    model, head = _model(1)
    loss = ts.losses.AdaptiveSoftmaxLoss(padding_id=-1, allow_empty=True)
    model.compile("sgd", loss=loss)
    result = model.evaluate(x, y, batch_size=len(rows), verbose=0, return_dict=True)
    per_row = _head_loss(head, x, tsn.label_set(y, padding_id=-1, allow_empty=True))
    assert per_row[3] == 0.0
    np.testing.assert_allclose(result["loss"], per_row.mean(), rtol=1e-5)
    restored = ts.losses.AdaptiveSoftmaxLoss.from_config(loss.get_config())
    assert (restored.padding_id, restored.allow_empty) == (-1, True)

    strict, _ = _model(1)
    strict.compile("sgd", loss=ts.losses.AdaptiveSoftmaxLoss(padding_id=-1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one true label"):
        strict.evaluate(x, y, batch_size=len(rows), verbose=0)
    inside, _ = _model(1)
    inside.compile("sgd", loss=ts.losses.AdaptiveSoftmaxLoss(padding_id=3), run_eagerly=True)
    with pytest.raises(ValueError, match="padding_id"):
        inside.evaluate(x, padded(ROWS, fill=3), batch_size=len(rows), verbose=0)


def test_keras_sequence_targets_with_padding(setup):
    # [batch, time, max_true] label sets beside [batch, time, dim] inputs.
    x = np.random.default_rng(2).normal(size=(4, 3, D)).astype(np.float32)
    y = np.random.default_rng(3).integers(0, V, (4, 3, 2))
    y[::2, :, 1] = -1
    inputs = keras.Input((3, D))
    head = ts.layers.AdaptiveSoftmax(V, cutoffs=CUTOFFS, div_value=2.0)
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=ts.losses.AdaptiveSoftmaxLoss(padding_id=-1))
    result = model.evaluate(x, y, batch_size=4, verbose=0)
    want = _head_loss(head, x.reshape(-1, D), tsn.label_set(y.reshape(-1, 2), padding_id=-1))
    np.testing.assert_allclose(result, want.mean(), rtol=1e-5)
