"""Variable-count labels (issue 26) in the exact full softmax and sigmoid losses.

Each loss against a per-example NumPy reference (target ``1 / n_i`` on each
real label), forward and gradient, in the chunked and the one-block paths.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tf_sampling._core import full_softmax

NUM_CLASSES, DIM, MAX_TRUE = 30, 5, 3
ROWS = [[4], [7, 2, 9], [11, 5], [0], [13, 8, 21]]
LOSSES = {"softmax": tsn.full_softmax_cross_entropy, "sigmoid": tsn.full_sigmoid_cross_entropy}
# 8: blocks of 8 classes (a loop); None: the 30 classes in one block.
CHUNKS = [8, None]


def _problem(seed=0, rows=ROWS):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32)
    b = rng.normal(size=(NUM_CLASSES,)).astype(np.float32)
    x = rng.normal(size=(len(rows), DIM)).astype(np.float32)
    cot = rng.uniform(0.5, 1.5, size=(len(rows),)).astype(np.float32)
    return w, b, x, cot


def _padded(rows=ROWS, pad=-1, front=False):
    out = []
    for r in rows:
        fill = [pad] * (MAX_TRUE - len(r))
        out.append(fill + r if front else r + fill)
    return np.array(out, np.int64)


def _run(kind, labels, problem, chunk_size, num_true=MAX_TRUE):
    w, b, x, cot = (tf.constant(a) for a in problem)
    with tf.GradientTape() as tape:
        tape.watch([w, b, x])
        loss = LOSSES[kind](w, b, labels, x, NUM_CLASSES, num_true, chunk_size=chunk_size)
    grads = tape.gradient(loss, [w, b, x], output_gradients=cot)
    return [loss.numpy()] + [tf.convert_to_tensor(g).numpy() for g in grads]


def _reference(kind, problem, rows=ROWS):
    """Each example alone in float64: loss and gradients with target 1/n_i."""
    w, b, x, cot = (a.astype(np.float64) for a in problem)
    losses, dw, db, dx = [], np.zeros_like(w), np.zeros_like(b), np.zeros_like(x)
    for i, row in enumerate(rows):
        z = w @ x[i] + b
        t = np.zeros(NUM_CLASSES)
        if row:
            t[row] = 1.0 / len(row)
        if kind == "softmax":
            top = z.max()
            lse = top + np.log(np.exp(z - top).sum())
            loss = lse - (t * z).sum()
            dz = np.exp(z - lse) - t
        else:
            loss = (np.logaddexp(0, z) - t * z).sum()
            dz = 1 / (1 + np.exp(-z)) - t
        if not row:
            loss, dz = 0.0, np.zeros_like(z)
        dz = dz * cot[i]
        losses.append(loss)
        dw += np.outer(dz, x[i])
        db += dz
        dx[i] = dz @ w
    return [np.array(losses), dw, db, dx]


def _assert_close(got, want, rtol=2e-5, atol=2e-5):
    for name, g, r in zip(("loss", "dw", "db", "dx"), got, want, strict=True):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_ragged_and_padded_match_the_per_example_reference(kind, chunk_size):
    problem = _problem()
    want = _reference(kind, problem)
    ragged = _run(kind, tf.ragged.constant(ROWS, dtype=tf.int64), problem, chunk_size)
    _assert_close(ragged, want)
    for labels in (
        tsn.label_set(_padded(), padding_id=-1),
        # Padding first: the real labels still count once each.
        tsn.label_set(_padded(pad=99, front=True), padding_id=99),
        tsn.label_set(_padded(pad=0), mask=_padded() >= 0),
    ):
        got = _run(kind, labels, problem, chunk_size)
        for g, r in zip(got, ragged, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_full_rows_equal_the_fixed_num_true_path_bit_for_bit(kind, chunk_size):
    problem = _problem(1)
    full = np.array([[3, 7, 11], [2, 2, 5], [0, 29, 13], [8, 1, 4], [6, 9, 21]], np.int64)
    fixed = _run(kind, full, problem, chunk_size)
    for labels in (tsn.label_set(full, padding_id=-1), tf.RaggedTensor.from_tensor(full)):
        got = _run(kind, labels, problem, chunk_size)
        for g, r in zip(got, fixed, strict=True):
            np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_allowed_empty_row_has_zero_loss_and_gradient(kind):
    rows = [[4], [], [11, 5]]
    problem = _problem(2, rows)
    labels = tsn.label_set(_padded(rows), padding_id=-1, allow_empty=True)
    got = _run(kind, labels, problem, 8)
    _assert_close(got, _reference(kind, problem, rows))
    assert got[0][1] == 0.0 and not got[3][1].any()


def test_rank_counts_from_the_first_real_label():
    problem = _problem(3)
    w, b, x, _ = problem
    labels = tsn.label_set(_padded(pad=-1, front=True), padding_id=-1)
    losses, rank = full_softmax.full_softmax_cross_entropy_and_rank(
        w, b, labels, x, NUM_CLASSES, MAX_TRUE, chunk_size=8
    )
    logits = x @ w.T + b
    first = np.array([r[0] for r in ROWS])
    want = (logits > logits[np.arange(len(ROWS)), first][:, None]).sum(1)
    np.testing.assert_array_equal(rank.numpy(), want)
    np.testing.assert_allclose(losses.numpy(), _reference("softmax", problem)[0], rtol=2e-5)


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_padded_labels_compile_under_jit(kind):
    problem = _problem(4)
    w, b, x, _ = (tf.constant(a) for a in problem)
    padded = tf.constant(_padded())

    @tf.function(jit_compile=True)
    def step(p):
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = LOSSES[kind](
                w, b, tsn.label_set(p, padding_id=-1), x, NUM_CLASSES, MAX_TRUE, chunk_size=8
            )
        return loss, tape.gradient(loss, w)

    loss, dw = step(padded)
    want = _reference(kind, problem[:3] + (np.ones(len(ROWS), np.float32),))
    np.testing.assert_allclose(loss.numpy(), want[0], rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(dw.numpy(), want[1], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_bad_variable_labels_are_rejected(kind):
    problem = _problem()
    with pytest.raises(ValueError, match="padding_id"):
        _run(kind, tsn.label_set(_padded(pad=3), padding_id=3), problem, 8)
    three = _problem(0, [[4], [], [1]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one true label"):
        _run(kind, tsn.label_set(_padded([[4], [], [1]]), padding_id=-1), three, 8)
    with pytest.raises(tf.errors.InvalidArgumentError):
        _run(kind, tsn.label_set(_padded([[4], [30], [1]]), padding_id=-1), three, 8)
    # Without opting in, a negative label is still an error.
    with pytest.raises(tf.errors.InvalidArgumentError):
        _run(kind, _padded(), problem, 8)
