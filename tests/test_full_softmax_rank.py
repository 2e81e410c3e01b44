"""The one-pass cross-entropy and rank that exact evaluation uses."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling._core.full_softmax import (
    full_softmax_cross_entropy,
    full_softmax_cross_entropy_and_rank,
)

V, D, N = 37, 5, 9


def _problem():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(V, D)).astype("float32")
    b = rng.normal(size=V).astype("float32")
    x = rng.normal(size=(N, D)).astype("float32")
    y = rng.integers(0, V, size=(N, 2))
    return w, b, x, y


def _shards(table, count, strategy):
    if count == 1:
        return table
    if strategy == "div":
        return np.array_split(table, count)
    return [table[s::count] for s in range(count)]


@pytest.mark.parametrize("chunk", [4, 8, None])
@pytest.mark.parametrize("shards,strategy", [(1, "div"), (3, "mod"), (4, "div")])
@pytest.mark.parametrize("graph", [False, True])
def test_rank_counts_the_classes_above_the_first_target(chunk, shards, strategy, graph):
    w, b, x, y = _problem()
    logits = x.astype(np.float64) @ w.T.astype(np.float64) + b
    expected_rank = (logits > logits[np.arange(N), y[:, 0]][:, None]).sum(1)
    args = (_shards(w, shards, strategy), _shards(b, shards, strategy), y, x, V)
    kwargs = dict(num_true=2, partition_strategy=strategy, chunk_size=chunk)

    def run():
        return full_softmax_cross_entropy_and_rank(*args, **kwargs)

    loss, rank = tf.function(run)() if graph else run()
    np.testing.assert_array_equal(rank.numpy(), expected_rank)
    np.testing.assert_allclose(loss, full_softmax_cross_entropy(*args, **kwargs), rtol=1e-6)


def test_loss_gradient_is_the_plain_losss_and_ties_are_not_above():
    w, b, x, y = _problem()
    x = tf.constant(x)
    grads = []
    for fn in (full_softmax_cross_entropy_and_rank, full_softmax_cross_entropy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(w, b, y, x, V, num_true=2, chunk_size=8)
            total = tf.reduce_sum(out[0] if isinstance(out, tuple) else out)
        grads.append(tape.gradient(total, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    # Every class ties: none is above the target, whatever its id.
    _, rank = full_softmax_cross_entropy_and_rank(
        np.zeros((V, D), "float32"),
        np.zeros(V, "float32"),
        [3, 30],
        np.ones((2, D)),
        V,
        chunk_size=8,
    )
    np.testing.assert_array_equal(rank.numpy(), [0, 0])


@pytest.mark.parametrize("chunk", [4, None])
def test_rows_without_a_rank_are_never_hits(chunk):
    # A NaN row has no rank: counting the classes "above" a NaN logit gave 0,
    # a top-1 hit for a model whose weights went NaN.
    w, b, x, y = _problem()
    x[3] = np.nan
    loss, rank = full_softmax_cross_entropy_and_rank(w, b, y, x, V, num_true=2, chunk_size=chunk)
    logits = x.astype(np.float64) @ w.T.astype(np.float64) + b
    expected = (logits > logits[np.arange(N), y[:, 0]][:, None]).sum(1)
    expected[3] = V
    assert np.isnan(loss.numpy()[3])
    np.testing.assert_array_equal(rank.numpy(), expected)


def test_out_of_range_label_under_xla_gives_a_nan_loss_and_no_rank():
    w, b, x, y = _problem()
    y[5, 1] = V + 2
    run = tf.function(
        lambda: full_softmax_cross_entropy_and_rank(w, b, y, x, V, num_true=2, chunk_size=8),
        jit_compile=True,
    )
    loss, rank = run()
    good = np.arange(N) != 5
    want = full_softmax_cross_entropy(w, b, np.where(good[:, None], y, 0), x, V, num_true=2)
    assert np.isnan(loss.numpy()[5]) and rank.numpy()[5] == V
    np.testing.assert_allclose(loss.numpy()[good], want.numpy()[good], rtol=1e-6)
