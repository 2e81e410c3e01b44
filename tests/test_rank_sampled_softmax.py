"""Tests for `tf_sampling.nn.rank_sampled_softmax_loss` (TAPAS).

The expected values come from a float64 NumPy transcription of the TF 1.15 algorithm
(`tensorflow/contrib/nn/python/ops/sampling_ops.py` on top of
`tensorflow/python/ops/nn_impl.py`):

1. First pass: `sampled_values = (candidates, true_expected_count, sampled_expected_count)`.
2. Score of candidate ``i``: ``logsumexp_j(w_i . x_j / T) + b_i / T`` over the batch rows ``j``.
3. Keep the ``num_resampled`` best-scoring candidates; their expected counts are the first-pass
   ``sampled_expected_count`` gathered at the kept positions, and the true expected counts are the
   first-pass ``true_expected_count`` unchanged.
4. Sampled softmax on the kept candidates: logits minus ``log(expected_count)``, accidental hits
   pushed to ``-FLOAT_MAX``, target ``1 / num_true`` on each true class.

The selection is a constant for differentiation, so the gradients are those of step 4.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import nn as ts_nn
from tf_sampling import ops as ts_ops
from tf_sampling._core import rank_sampled_softmax as rss

NUM_CLASSES = 23  # not a multiple of the shard count: uneven shards
DIM = 5
BATCH = 6
NUM_SAMPLED = 9
NUM_RESAMPLED = 4
NUM_SHARDS = 3


# --------------------------------------------------------------------------------------------
# NumPy reference of TF 1.15
# --------------------------------------------------------------------------------------------


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)), axis=axis)


def np_resampling_scores(w, b, x, candidates, temperature):
    """`_rank_resample` scores: logsumexp over the batch of the logits divided by T."""
    return _logsumexp(w[candidates] @ (x / temperature).T, axis=1) + b[candidates] / temperature


def np_rank_resample(w, b, x, sampled_values, num_resampled, temperature):
    """Returns the second-pass `(candidates, true_expected_count, sampled_expected_count)`."""
    candidates, true_ec, sampled_ec = sampled_values
    scores = np_resampling_scores(w, b, x, candidates, temperature)
    keep = np.argsort(-scores, kind="stable")[:num_resampled]
    return candidates[keep], true_ec, sampled_ec[keep]


def np_sampled_softmax(w, b, labels, x, sampled_values, remove_accidental_hits, upstream=None):
    """TF's sampled softmax for given candidates: per-example loss and (dw, db, dx).

    The gradients are of ``sum(upstream * loss)``; ``w``/``b`` are the logical tables.
    """
    candidates, true_ec, sampled_ec = sampled_values
    batch, num_true = labels.shape
    if upstream is None:
        upstream = np.ones(batch)
    true_logits = np.einsum("bd,btd->bt", x, w[labels]) + b[labels] - np.log(true_ec)
    sampled_logits = x @ w[candidates].T + b[candidates] - np.log(sampled_ec)[None, :]
    if remove_accidental_hits:
        hit = np.any(labels[:, :, None] == candidates[None, None, :], axis=1)
        # TF's ComputeAccidentalHits masks a class sampled twice at its last position only.
        last = {c: k for k, c in enumerate(candidates)}
        hit &= np.array([last[c] == k for k, c in enumerate(candidates)])[None, :]
        sampled_logits = np.where(hit, -np.inf, sampled_logits)
    logits = np.concatenate([true_logits, sampled_logits], axis=1)
    log_z = _logsumexp(logits, axis=1)
    loss = log_z - np.mean(true_logits, axis=1)
    probs = np.exp(logits - log_z[:, None])
    target = np.concatenate(
        [np.full_like(true_logits, 1.0 / num_true), np.zeros_like(sampled_logits)], axis=1
    )
    g = upstream[:, None] * (probs - target)  # d(sum upstream*loss) / d logits
    g_true, g_sampled = g[:, :num_true], g[:, num_true:]
    dx = np.einsum("bt,btd->bd", g_true, w[labels]) + g_sampled @ w[candidates]
    dw = np.zeros_like(w)
    np.add.at(dw, labels.reshape(-1), (g_true[:, :, None] * x[:, None, :]).reshape(-1, w.shape[1]))
    np.add.at(dw, candidates, g_sampled.T @ x)
    db = np.zeros_like(b)
    np.add.at(db, labels.reshape(-1), g_true.reshape(-1))
    np.add.at(db, candidates, g_sampled.sum(axis=0))
    return loss, dw, db, dx


def np_rank_sampled_softmax(
    w,
    b,
    labels,
    x,
    sampled_values,
    num_resampled,
    temperature,
    remove_accidental_hits,
    upstream=None,
):
    resampled = np_rank_resample(w, b, x, sampled_values, num_resampled, temperature)
    return np_sampled_softmax(w, b, labels, x, resampled, remove_accidental_hits, upstream)


# --------------------------------------------------------------------------------------------
# Sharding helpers (logical table <-> shards, as tf.nn.embedding_lookup maps ids)
# --------------------------------------------------------------------------------------------


def to_shards(table: np.ndarray, n: int, strategy: str) -> list[np.ndarray]:
    if strategy == "div":
        return np.array_split(table, n)
    return [table[p::n] for p in range(n)]


def from_shards(shards: list[np.ndarray], strategy: str) -> np.ndarray:
    if strategy == "div":
        return np.concatenate(shards)
    n = len(shards)
    out = np.zeros((sum(len(s) for s in shards),) + shards[0].shape[1:], shards[0].dtype)
    for p, shard in enumerate(shards):
        out[p::n] = shard
    return out


# --------------------------------------------------------------------------------------------
# Problem generation
# --------------------------------------------------------------------------------------------


def make_problem(num_true: int, temperature: float, seed: int = 0):
    """A problem whose kept candidates include true classes (so accidental hits matter)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(NUM_CLASSES, DIM))
    b = rng.normal(size=NUM_CLASSES)
    x = rng.normal(size=(BATCH, DIM))
    candidates = rng.choice(NUM_CLASSES, size=NUM_SAMPLED, replace=False).astype(np.int64)
    sampled_ec = rng.uniform(0.05, 0.9, size=NUM_SAMPLED)
    # The selection does not depend on the labels: make some labels hit kept candidates and
    # others miss every first-pass candidate.
    kept = np_rank_resample(w, b, x, (candidates, None, sampled_ec), NUM_RESAMPLED, temperature)[0]
    outside = np.setdiff1d(np.arange(NUM_CLASSES), candidates)
    labels = rng.choice(outside, size=(BATCH, num_true)).astype(np.int64)
    labels[0, 0] = kept[0]
    labels[2, num_true - 1] = kept[1]
    labels[3, 0] = kept[0]
    true_ec = rng.uniform(0.05, 0.9, size=(BATCH, num_true))
    upstream = rng.uniform(0.5, 1.5, size=BATCH)
    return dict(
        w=w,
        b=b,
        x=x,
        labels=labels,
        upstream=upstream,
        sampled_values=(candidates, true_ec, sampled_ec),
    )


def tf_sampled_values(sampled_values):
    candidates, true_ec, sampled_ec = sampled_values
    return (
        tf.constant(candidates, tf.int64),
        tf.constant(true_ec, tf.float32),
        tf.constant(sampled_ec, tf.float32),
    )


def dense(grad) -> np.ndarray:
    return tf.convert_to_tensor(grad).numpy()


TOL = dict(rtol=2e-5, atol=2e-5)

GRID = list(itertools.product([1, 2], [0.5, 1.0, 4.0], [True, False], [None, "mod", "div"]))


def _grid_id(p):
    num_true, temperature, hits, strategy = p
    return f"nt{num_true}-T{temperature}-hits{int(hits)}-{strategy or 'unsharded'}"


# --------------------------------------------------------------------------------------------
# The reference itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_true", [1, 2])
@pytest.mark.parametrize("hits", [True, False])
def test_reference_second_pass_matches_builtin_sampled_softmax(num_true, hits):
    """The NumPy sampled softmax equals tf.compat.v1.nn.sampled_softmax_loss (built-in)."""
    p = make_problem(num_true, 1.0)
    resampled = np_rank_resample(p["w"], p["b"], p["x"], p["sampled_values"], NUM_RESAMPLED, 1.0)
    w = tf.constant(p["w"], tf.float32)
    b = tf.constant(p["b"], tf.float32)
    x = tf.constant(p["x"], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([w, b, x])
        loss = tf.compat.v1.nn.sampled_softmax_loss(
            w,
            b,
            tf.constant(p["labels"]),
            x,
            NUM_RESAMPLED,
            NUM_CLASSES,
            num_true=num_true,
            sampled_values=tf_sampled_values(resampled),
            remove_accidental_hits=hits,
        )
        total = tf.reduce_sum(loss * tf.constant(p["upstream"], tf.float32))
    grads = tape.gradient(total, [w, b, x])
    ref = np_sampled_softmax(p["w"], p["b"], p["labels"], p["x"], resampled, hits, p["upstream"])
    np.testing.assert_allclose(loss.numpy(), ref[0], **TOL)
    for got, want in zip(grads, ref[1:], strict=True):
        np.testing.assert_allclose(dense(got), want, **TOL)


def test_problem_is_sensitive_to_temperature_and_hits():
    """Guards the honesty of the grid: T changes the kept set; hits change the loss."""
    p = make_problem(1, 1.0, seed=0)
    kept = {
        t: set(np_rank_resample(p["w"], p["b"], p["x"], p["sampled_values"], NUM_RESAMPLED, t)[0])
        for t in (0.5, 1.0, 4.0)
    }
    assert len({frozenset(k) for k in kept.values()}) > 1, kept
    c = p["sampled_values"][0]
    # Dividing only the inputs (not the biases) by T would keep a different set.
    no_bias_t = _logsumexp(p["w"][c] @ (p["x"] / 0.5).T, axis=1) + p["b"][c]
    assert set(c[np.argsort(-no_bias_t)[:NUM_RESAMPLED]]) != kept[0.5]
    # So would ignoring the temperature.
    no_t = set(c[np.argsort(-np_resampling_scores(p["w"], p["b"], p["x"], c, 1.0))[:4]])
    assert no_t != kept[0.5] and no_t != kept[4.0]
    for num_true, t in itertools.product([1, 2], [0.5, 1.0, 4.0]):
        p = make_problem(num_true, t)
        on = np_rank_sampled_softmax(
            p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, t, True
        )[0]
        off = np_rank_sampled_softmax(
            p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, t, False
        )[0]
        assert not np.allclose(on, off)


# --------------------------------------------------------------------------------------------
# The function against the reference: eager, tf.function, TF1 graph
# --------------------------------------------------------------------------------------------


def _tables(p, strategy):
    """Variables for the weights and biases: one each, or NUM_SHARDS shards under strategy."""
    if strategy is None:
        return [tf.Variable(p["w"], dtype=tf.float32)], [tf.Variable(p["b"], dtype=tf.float32)]
    w = [tf.Variable(s, dtype=tf.float32) for s in to_shards(p["w"], NUM_SHARDS, strategy)]
    b = [tf.Variable(s, dtype=tf.float32) for s in to_shards(p["b"], NUM_SHARDS, strategy)]
    return w, b


def _logical(grads, strategy):
    arrays = [dense(g) for g in grads]
    return arrays[0] if strategy is None else from_shards(arrays, strategy)


def _loss_and_grads(fn, p, num_true, temperature, hits, strategy, w_vars, b_vars):
    x = tf.constant(p["x"], tf.float32)
    weights = w_vars[0] if strategy is None else w_vars
    biases = b_vars[0] if strategy is None else b_vars
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = fn(
            weights,
            biases,
            tf.constant(p["labels"]),
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            num_true,
            tf_sampled_values(p["sampled_values"]),
            temperature,
            hits,
            strategy or "mod",
        )
        total = tf.reduce_sum(loss * tf.constant(p["upstream"], tf.float32))
    grads = tape.gradient(total, [*w_vars, *b_vars, x])
    return loss, grads


def _check_against_reference(p, num_true, temperature, hits, strategy, loss, grads, n_w):
    want = np_rank_sampled_softmax(
        p["w"],
        p["b"],
        p["labels"],
        p["x"],
        p["sampled_values"],
        NUM_RESAMPLED,
        temperature,
        hits,
        p["upstream"],
    )
    np.testing.assert_allclose(np.asarray(loss), want[0], **TOL)
    np.testing.assert_allclose(_logical(grads[:n_w], strategy), want[1], **TOL)
    np.testing.assert_allclose(_logical(grads[n_w:-1], strategy), want[2], **TOL)
    np.testing.assert_allclose(dense(grads[-1]), want[3], **TOL)


@pytest.mark.parametrize("params", GRID, ids=_grid_id)
def test_eager_matches_reference(params):
    num_true, temperature, hits, strategy = params
    p = make_problem(num_true, temperature)
    w_vars, b_vars = _tables(p, strategy)
    loss, grads = _loss_and_grads(
        ts_nn.rank_sampled_softmax_loss, p, num_true, temperature, hits, strategy, w_vars, b_vars
    )
    assert loss.shape == (BATCH,)
    for g in grads[:-1]:
        assert isinstance(g, tf.IndexedSlices)  # sparse updates for the class tables
    _check_against_reference(p, num_true, temperature, hits, strategy, loss, grads, len(w_vars))


@pytest.mark.parametrize(
    "params",
    [
        (1, 0.5, True, "mod"),
        (2, 1.0, False, "div"),
        (2, 4.0, True, None),
        (1, 4.0, False, "div"),
    ],
    ids=_grid_id,
)
def test_tf_function_matches_reference(params):
    num_true, temperature, hits, strategy = params
    p = make_problem(num_true, temperature)
    w_vars, b_vars = _tables(p, strategy)
    fn = tf.function(
        lambda: _loss_and_grads(
            ts_nn.rank_sampled_softmax_loss,
            p,
            num_true,
            tf.constant(temperature),
            hits,
            strategy,
            w_vars,
            b_vars,
        )
    )
    loss, grads = fn()
    _check_against_reference(p, num_true, temperature, hits, strategy, loss, grads, len(w_vars))


def test_annealed_variable_temperature_without_retracing():
    """A tf.Variable temperature is read on each call of a traced function."""
    num_true, strategy, hits = 2, "mod", True
    w_vars, b_vars = _tables(make_problem(num_true, 1.0), strategy)
    temperature = tf.Variable(4.0)
    traces = []

    @tf.function
    def step(x, labels, sampled_values):
        traces.append(1)
        return ts_nn.rank_sampled_softmax_loss(
            w_vars,
            b_vars,
            labels,
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            num_true,
            sampled_values,
            temperature,
            hits,
            strategy,
        )

    for t in (4.0, 1.0, 0.5):
        temperature.assign(t)
        # Same weights; labels built for this temperature's kept set.
        p = make_problem(num_true, t)
        loss = step(
            tf.constant(p["x"], tf.float32),
            tf.constant(p["labels"]),
            tf_sampled_values(p["sampled_values"]),
        )
        want = np_rank_sampled_softmax(
            p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, t, hits
        )[0]
        np.testing.assert_allclose(loss.numpy(), want, **TOL)
    assert len(traces) == 1


def _graph_loss_and_grads(fn, p, num_true, temperature, hits, strategy, feed_temperature):
    """Builds and runs a TF1 graph with PartitionedVariables from fixed_size_partitioner."""
    graph = tf.compat.v1.Graph()
    with graph.as_default():
        partitioner = tf.compat.v1.fixed_size_partitioner(NUM_SHARDS)
        w = tf.compat.v1.get_variable(
            "w",
            shape=[NUM_CLASSES, DIM],
            partitioner=partitioner,
            initializer=tf.compat.v1.zeros_initializer(),
        )
        b = tf.compat.v1.get_variable(
            "b",
            shape=[NUM_CLASSES],
            partitioner=partitioner,
            initializer=tf.compat.v1.zeros_initializer(),
        )
        # No public name for the class in TF 2: check it by name and shard count.
        assert type(w).__name__ == "PartitionedVariable" and len(list(w)) == NUM_SHARDS
        x = tf.compat.v1.placeholder(tf.float32, [None, DIM])
        labels = tf.compat.v1.placeholder(tf.int64, [None, num_true])
        cand = tf.compat.v1.placeholder(tf.int64, [NUM_SAMPLED])
        true_ec = tf.compat.v1.placeholder(tf.float32, [None, num_true])
        sampled_ec = tf.compat.v1.placeholder(tf.float32, [NUM_SAMPLED])
        temp = tf.compat.v1.placeholder(tf.float32, []) if feed_temperature else temperature
        loss = fn(
            weights=w,
            biases=b,
            labels=labels,
            inputs=x,
            num_sampled=NUM_SAMPLED,
            num_resampled=NUM_RESAMPLED,
            num_classes=NUM_CLASSES,
            num_true=num_true,
            sampled_values=(cand, true_ec, sampled_ec),
            resampling_temperature=temp,
            remove_accidental_hits=hits,
            partition_strategy=strategy,
        )
        total = tf.reduce_sum(loss * p["upstream"].astype(np.float32))
        grads = tf.compat.v1.gradients(total, [*list(w), *list(b), x])
        grads = [tf.convert_to_tensor(g) for g in grads]
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for var, value in zip(list(w), to_shards(p["w"], NUM_SHARDS, strategy), strict=True):
                var.load(value.astype(np.float32), sess)
            for var, value in zip(list(b), to_shards(p["b"], NUM_SHARDS, strategy), strict=True):
                var.load(value.astype(np.float32), sess)
            feed = {
                x: p["x"],
                labels: p["labels"],
                cand: p["sampled_values"][0],
                true_ec: p["sampled_values"][1],
                sampled_ec: p["sampled_values"][2],
            }
            if feed_temperature:
                feed[temp] = temperature
            return sess.run([loss, grads], feed_dict=feed)


@pytest.mark.parametrize(
    "params,feed_temperature",
    [
        ((1, 0.5, True, "mod"), True),
        ((2, 4.0, True, "div"), False),
        ((2, 1.0, False, "mod"), False),
        ((1, 4.0, False, "div"), True),
    ],
    ids=lambda v: _grid_id(v) if isinstance(v, tuple) else f"fed{int(v)}",
)
def test_tf1_graph_partitioned_variable_matches_reference(params, feed_temperature):
    num_true, temperature, hits, strategy = params
    p = make_problem(num_true, temperature)
    loss, grads = _graph_loss_and_grads(
        ts_nn.rank_sampled_softmax_loss, p, num_true, temperature, hits, strategy, feed_temperature
    )
    want = np_rank_sampled_softmax(
        p["w"],
        p["b"],
        p["labels"],
        p["x"],
        p["sampled_values"],
        NUM_RESAMPLED,
        temperature,
        hits,
        p["upstream"],
    )
    np.testing.assert_allclose(loss, want[0], **TOL)
    np.testing.assert_allclose(from_shards(grads[:NUM_SHARDS], strategy), want[1], **TOL)
    np.testing.assert_allclose(from_shards(grads[NUM_SHARDS:-1], strategy), want[2], **TOL)
    np.testing.assert_allclose(grads[-1], want[3], **TOL)


# --------------------------------------------------------------------------------------------
# Details of the resampling step
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_rank_resample_keeps_top_candidates_with_first_pass_counts(temperature):
    p = make_problem(2, temperature)
    table_w = rss.sharding.as_sharded_table(to_shards(p["w"], NUM_SHARDS, "mod"), "mod")
    table_b = rss.sharding.as_sharded_table(to_shards(p["b"], NUM_SHARDS, "mod"), "mod")
    sv = tf_sampled_values(p["sampled_values"])
    kept, true_ec, kept_ec = rss.rank_resample(
        table_w,
        table_b,
        tf.constant(p["x"], tf.float32),
        sv,
        NUM_RESAMPLED,
        temperature,
        tf.float32,
    )
    want_kept, want_true_ec, want_ec = np_rank_resample(
        p["w"], p["b"], p["x"], p["sampled_values"], NUM_RESAMPLED, temperature
    )
    order = np.argsort(kept.numpy())
    want_order = np.argsort(want_kept)
    np.testing.assert_array_equal(kept.numpy()[order], want_kept[want_order])
    # Counts travel with their candidates, taken from the first pass; true counts unchanged.
    np.testing.assert_allclose(kept_ec.numpy()[order], want_ec[want_order], rtol=1e-6)
    np.testing.assert_allclose(true_ec.numpy(), want_true_ec, rtol=1e-6)


def test_repeated_first_pass_candidate_is_masked_like_tf():
    """A class sampled twice and kept twice: TF masks its last occurrence only."""
    p = make_problem(1, 1.0)
    candidates, true_ec, sampled_ec = (np.copy(a) for a in p["sampled_values"])
    kept = np_rank_resample(p["w"], p["b"], p["x"], p["sampled_values"], NUM_RESAMPLED, 1.0)[0]
    # Duplicate the best candidate (a true class of rows 0 and 3) over a discarded one.
    dropped = np.setdiff1d(np.arange(NUM_SAMPLED), np.nonzero(np.isin(candidates, kept))[0])[0]
    best = np.nonzero(candidates == kept[0])[0][0]
    candidates[dropped] = candidates[best]
    sampled_ec[dropped] = sampled_ec[best]
    p["sampled_values"] = (candidates, true_ec, sampled_ec)
    w_vars, b_vars = _tables(p, None)
    loss, grads = _loss_and_grads(
        ts_nn.rank_sampled_softmax_loss, p, 1, 1.0, True, None, w_vars, b_vars
    )
    resampled = np_rank_resample(p["w"], p["b"], p["x"], p["sampled_values"], NUM_RESAMPLED, 1.0)
    assert np.sum(resampled[0] == kept[0]) == 2
    _check_against_reference(p, 1, 1.0, True, None, loss, grads, 1)


def test_selection_and_temperature_get_no_gradient():
    p = make_problem(1, 1.0)
    w = tf.Variable(p["w"], dtype=tf.float32)
    b = tf.Variable(p["b"], dtype=tf.float32)
    temperature = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        loss = ts_nn.rank_sampled_softmax_loss(
            w,
            b,
            p["labels"],
            tf.constant(p["x"], tf.float32),
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            1,
            tf_sampled_values(p["sampled_values"]),
            temperature,
            True,
            "div",
        )
    dw, db, dt = tape.gradient(loss, [w, b, temperature])
    assert dt is None
    # Only true classes and kept candidates receive gradient; discarded candidates do not.
    kept = np_rank_resample(p["w"], p["b"], p["x"], p["sampled_values"], NUM_RESAMPLED, 1.0)[0]
    touched = set(np.unique(dw.indices.numpy()))
    assert touched == set(kept) | set(p["labels"].ravel())
    discarded = set(p["sampled_values"][0]) - set(kept)
    assert discarded and not discarded & touched
    assert set(np.unique(db.indices.numpy())) == touched


def test_low_precision_inputs_and_weights_compute_in_float32():
    p = make_problem(2, 0.5)
    want = np_rank_sampled_softmax(
        p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, 0.5, True
    )[0]
    for dtype in (tf.float16, tf.bfloat16):
        loss = ts_nn.rank_sampled_softmax_loss(
            tf.constant(p["w"], dtype),
            tf.constant(p["b"], dtype),
            p["labels"],
            tf.constant(p["x"], dtype),
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            2,
            tf_sampled_values(p["sampled_values"]),
            tf.constant(0.5, dtype),
            True,
            "mod",
        )
        assert loss.dtype == tf.float32
        np.testing.assert_allclose(loss.numpy(), want, rtol=0.05, atol=0.05)


def test_keras_variables_and_name_scope():
    import keras

    p = make_problem(1, 4.0)
    w = keras.Variable(p["w"].astype(np.float32))
    b = keras.Variable(p["b"].astype(np.float32))
    temperature = keras.Variable(4.0, trainable=False)
    loss = ts_nn.rank_sampled_softmax_loss(
        w,
        b,
        p["labels"],
        p["x"].astype(np.float32),
        NUM_SAMPLED,
        NUM_RESAMPLED,
        NUM_CLASSES,
        1,
        tf_sampled_values(p["sampled_values"]),
        temperature,
        False,
        "mod",
    )
    want = np_rank_sampled_softmax(
        p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, 4.0, False
    )[0]
    np.testing.assert_allclose(loss.numpy(), want, **TOL)
    graph = tf.compat.v1.Graph()
    with graph.as_default():
        out = ts_nn.rank_sampled_softmax_loss(
            p["w"].astype(np.float32),
            p["b"].astype(np.float32),
            p["labels"],
            p["x"].astype(np.float32),
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            1,
            tf_sampled_values(p["sampled_values"]),
            1.0,
            True,
            "mod",
            name="tapas",
        )
        assert out.name.startswith("tapas/")


# --------------------------------------------------------------------------------------------
# Training: TAPAS improves the full-softmax ranking over plain sampled softmax
# --------------------------------------------------------------------------------------------

TRAIN_CLASSES, TRAIN_DIM, TRAIN_CLUSTERS = 1000, 16, 50


def _clustered_problem(seed: int):
    """Classes in 50 tight clusters of 20: random negatives are mostly easy ones."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(TRAIN_CLUSTERS, TRAIN_DIM))
    protos = centers[np.arange(TRAIN_CLASSES) % TRAIN_CLUSTERS] + 0.35 * rng.normal(
        size=(TRAIN_CLASSES, TRAIN_DIM)
    )

    def draw(n):
        y = rng.integers(0, TRAIN_CLASSES, size=n)
        return (protos[y] + 0.15 * rng.normal(size=(n, TRAIN_DIM))).astype(np.float32), y

    return draw(20000), draw(2000)


def _train_and_recall(
    method: str,
    seed: int,
    num_kept: int = 8,
    num_first_pass: int = 200,
    steps: int = 300,
    batch: int = 128,
) -> dict[int, float]:
    """Trains a linear softmax classifier; returns held-out full-softmax recall@k."""
    (x_train, y_train), (x_test, y_test) = _clustered_problem(seed)
    tf.random.set_seed(seed)
    w = tf.Variable(tf.zeros([TRAIN_CLASSES, TRAIN_DIM]))
    b = tf.Variable(tf.zeros([TRAIN_CLASSES]))
    optimizer = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def step(x, y):
        labels = y[:, None]
        with tf.GradientTape() as tape:
            if method == "sampled":
                sv = tf.random.uniform_candidate_sampler(
                    labels, 1, num_kept, True, TRAIN_CLASSES, seed=seed
                )
                loss = ts_nn.sampled_softmax_loss(
                    w, b, labels, x, num_kept, TRAIN_CLASSES, sampled_values=sv
                )
            else:
                sv = tf.random.uniform_candidate_sampler(
                    labels, 1, num_first_pass, True, TRAIN_CLASSES, seed=seed
                )
                loss = ts_nn.rank_sampled_softmax_loss(
                    w,
                    b,
                    labels,
                    x,
                    num_first_pass,
                    num_kept,
                    TRAIN_CLASSES,
                    1,
                    sv,
                    1.0,
                    True,
                    "div",
                )
            loss = tf.reduce_mean(loss)
        optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b], strict=True))

    rng = np.random.default_rng(seed + 1)
    for _ in range(steps):
        idx = rng.integers(0, len(x_train), batch)
        step(x_train[idx], y_train[idx])
    logits = x_test @ w.numpy().T + b.numpy()
    rank = np.sum(logits > logits[np.arange(len(y_test)), y_test][:, None], axis=1)
    return {k: float(np.mean(rank < k)) for k in (1, 5, 10)}


def test_rank_sampled_training_beats_sampled_softmax_on_recall(capsys):
    """Same optimiser, steps and number of negatives in the softmax (8): TAPAS picks the 8
    hardest of 200 uniform candidates; plain sampled softmax uses 8 uniform ones."""
    plain = _train_and_recall("sampled", seed=0)
    tapas = _train_and_recall("rank", seed=0)
    with capsys.disabled():
        print(f"\nheld-out recall@k  sampled softmax: {plain}  rank sampled (TAPAS): {tapas}")
    # Observed (seed 0): recall@1 0.14 vs 0.38, @5 0.51 vs 0.72, @10 0.74 vs 0.85.
    assert tapas[1] > plain[1] + 0.1
    assert tapas[5] > plain[5] + 0.1
    assert tapas[10] > plain[10]


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _call(**overrides):
    p = make_problem(1, 1.0)
    args = dict(
        weights=p["w"].astype(np.float32),
        biases=p["b"].astype(np.float32),
        labels=p["labels"],
        inputs=p["x"].astype(np.float32),
        num_sampled=NUM_SAMPLED,
        num_resampled=NUM_RESAMPLED,
        num_classes=NUM_CLASSES,
        num_true=1,
        sampled_values=tf_sampled_values(p["sampled_values"]),
        resampling_temperature=1.0,
        remove_accidental_hits=True,
        partition_strategy="mod",
    )
    args.update(overrides)
    return ts_nn.rank_sampled_softmax_loss(**args)


def test_valid_call_succeeds():
    assert _call().shape == (BATCH,)


@pytest.mark.parametrize("num_resampled", [NUM_SAMPLED, NUM_SAMPLED + 3])
def test_num_resampled_not_less_than_num_sampled(num_resampled):
    with pytest.raises(ValueError) as err:
        _call(num_resampled=num_resampled)
    message = str(err.value)
    assert "num_resampled" in message and "num_sampled" in message
    assert f"({num_resampled})" in message and f"({NUM_SAMPLED})" in message


@pytest.mark.parametrize(
    "temperature", [0.0, -1.0, -2, float("nan"), float("inf"), np.float32(0.0)]
)
def test_non_positive_python_temperature(temperature):
    with pytest.raises(ValueError, match="resampling_temperature.*" + str(temperature)[:3]):
        _call(resampling_temperature=temperature)


def test_bool_and_non_real_temperature():
    with pytest.raises(TypeError, match="resampling_temperature"):
        _call(resampling_temperature=True)
    with pytest.raises(TypeError, match="resampling_temperature"):
        _call(resampling_temperature=tf.constant("hot"))
    with pytest.raises(ValueError, match="resampling_temperature.*scalar"):
        _call(resampling_temperature=tf.constant([1.0, 2.0]))


@pytest.mark.parametrize("value", [0.0, -0.5, float("nan")])
def test_non_positive_tensor_temperature_fails_at_run_time(value):
    with pytest.raises(tf.errors.InvalidArgumentError, match="resampling_temperature"):
        _call(resampling_temperature=tf.constant(value))
    variable = tf.Variable(1.0)
    fn = tf.function(lambda: _call(resampling_temperature=variable))
    fn()
    variable.assign(value)
    with pytest.raises(tf.errors.InvalidArgumentError, match="resampling_temperature"):
        fn()
    graph = tf.compat.v1.Graph()
    with graph.as_default():
        temp = tf.compat.v1.placeholder(tf.float32, [])
        loss = _call(resampling_temperature=temp)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(loss, {temp: 2.0})
            with pytest.raises(tf.errors.InvalidArgumentError, match="resampling_temperature"):
                sess.run(loss, {temp: value})


@pytest.mark.parametrize(
    "overrides,error,pattern",
    [
        (dict(num_sampled=NUM_CLASSES + 1, num_resampled=2), ValueError, "num_sampled"),
        (dict(num_sampled=9.0), TypeError, "num_sampled"),
        (dict(num_resampled=0), ValueError, "num_resampled"),
        (dict(num_resampled=2.5), TypeError, "num_resampled"),
        (dict(num_classes=0), ValueError, "num_classes"),
        (dict(num_true=0), ValueError, "num_true"),
        (dict(partition_strategy="ring"), ValueError, "partition_strategy.*ring"),
        (dict(labels=np.zeros((BATCH, 2), np.int64)), ValueError, "labels"),
        (dict(labels=np.zeros((BATCH + 1, 1), np.int64)), ValueError, "labels"),
        (dict(labels=np.full((BATCH, 1), 0.5, np.float32)), ValueError, "labels.*0.5"),
        (dict(inputs=np.zeros((BATCH, DIM + 1), np.float32)), ValueError, "inputs"),
        (dict(inputs=np.zeros((BATCH, DIM), np.int32)), TypeError, "inputs"),
        (dict(weights=np.zeros((NUM_CLASSES - 1, DIM), np.float32)), ValueError, "weights"),
        (dict(biases=np.zeros((NUM_CLASSES + 2,), np.float32)), ValueError, "biases"),
        (
            dict(weights=[np.zeros((5, DIM), np.float32)] * 3 + [np.zeros((8, DIM), np.float32)]),
            ValueError,
            "weights",
        ),  # shard sizes that cannot come from a "mod" split
        (
            dict(sampled_values=(np.arange(3), np.ones((BATCH, 1)), np.ones(3))),
            ValueError,
            "sampled_values.*num_resampled \\(4\\).*3",
        ),
        (
            dict(
                sampled_values=(np.arange(NUM_SAMPLED), np.ones((BATCH, 2)), np.ones(NUM_SAMPLED))
            ),
            ValueError,
            "sampled_values",
        ),
        (dict(sampled_values=(np.arange(NUM_SAMPLED),)), ValueError, "sampled_values"),
    ],
    ids=lambda v: None,
)
def test_rejects_what_the_foundation_rejects(overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        _call(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(labels=np.full((BATCH, 1), NUM_CLASSES, np.int64)),
        dict(
            sampled_values=(
                np.arange(NUM_SAMPLED) + NUM_CLASSES - 2,
                np.ones((BATCH, 1)),
                np.ones(NUM_SAMPLED),
            )
        ),
    ],
    ids=["labels", "sampled"],
)
def test_out_of_range_ids_fail_at_run_time(overrides):
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        _call(**overrides)


# --------------------------------------------------------------------------------------------
# Default first pass: the learned-unigram sampler
# --------------------------------------------------------------------------------------------


def test_default_sampler_is_unique_learned_unigram_over_num_classes(monkeypatch):
    """Without sampled_values, the first pass calls tf_sampling.ops' learned-unigram sampler
    exactly as TF 1.x called tf.nn.learned_unigram_candidate_sampler."""
    calls = []
    p = make_problem(2, 1.0)

    def fake_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None, name=None):
        calls.append(
            dict(
                true_classes=true_classes,
                num_true=num_true,
                num_sampled=num_sampled,
                unique=unique,
                range_max=range_max,
            )
        )
        return tf_sampled_values(p["sampled_values"])

    # The op the default-sampler hook calls (tf_sampling.samplers.xla_defaults.loss_default).
    monkeypatch.setattr(ts_ops, "learned_unigram_candidate_sampler", fake_sampler)
    loss = ts_nn.rank_sampled_softmax_loss(
        p["w"].astype(np.float32),
        p["b"].astype(np.float32),
        p["labels"].astype(np.int32),
        p["x"].astype(np.float32),
        NUM_SAMPLED,
        NUM_RESAMPLED,
        NUM_CLASSES,
        2,
        None,
        0.5,
        True,
        "mod",
    )
    assert len(calls) == 1
    call = calls[0]
    assert (call["num_true"], call["num_sampled"], call["unique"], call["range_max"]) == (
        2,
        NUM_SAMPLED,
        True,
        NUM_CLASSES,
    )
    assert call["true_classes"].dtype == tf.int64
    np.testing.assert_array_equal(call["true_classes"].numpy(), p["labels"])
    want = np_rank_sampled_softmax(
        p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, 0.5, True
    )[0]
    np.testing.assert_allclose(loss.numpy(), want, **TOL)


def test_default_sampler_with_the_compiled_op():
    ops = pytest.importorskip("tf_sampling.ops")
    if not hasattr(ops, "learned_unigram_candidate_sampler"):
        pytest.skip("tf_sampling.ops has no learned_unigram_candidate_sampler")
    p = make_problem(1, 1.0)
    w = tf.Variable(p["w"], dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = ts_nn.rank_sampled_softmax_loss(
            w,
            p["b"].astype(np.float32),
            p["labels"],
            p["x"].astype(np.float32),
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            1,
            None,
            1.0,
            True,
            "mod",
        )
    assert loss.shape == (BATCH,) and np.all(np.isfinite(loss.numpy()))
    grad = tape.gradient(loss, w)
    # True classes plus at most num_resampled kept candidates get gradient.
    touched = set(np.unique(grad.indices.numpy()))
    assert set(p["labels"].ravel()) <= touched
    assert len(touched - set(p["labels"].ravel())) <= NUM_RESAMPLED


def test_default_sampler_in_tf_function_and_tf1_graph():
    ops = pytest.importorskip("tf_sampling.ops")
    if not hasattr(ops, "learned_unigram_candidate_sampler"):
        pytest.skip("tf_sampling.ops has no learned_unigram_candidate_sampler")
    p = make_problem(2, 1.0)
    w_vars, b_vars = _tables(p, "div")

    @tf.function
    def loss_fn(x, labels):
        return ts_nn.rank_sampled_softmax_loss(
            w_vars,
            b_vars,
            labels,
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            2,
            None,
            tf.constant(0.5),
            True,
            "div",
        )

    for _ in range(2):
        out = loss_fn(tf.constant(p["x"], tf.float32), tf.constant(p["labels"]))
        assert out.shape == (BATCH,) and np.all(np.isfinite(out.numpy()))
    graph = tf.compat.v1.Graph()
    with graph.as_default():
        w = tf.compat.v1.get_variable(
            "w", [NUM_CLASSES, DIM], partitioner=(tf.compat.v1.fixed_size_partitioner(NUM_SHARDS))
        )
        loss = ts_nn.rank_sampled_softmax_loss(
            w,
            p["b"].astype(np.float32),
            p["labels"],
            p["x"].astype(np.float32),
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            2,
            None,
            2.0,
            False,
            "mod",
        )
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert np.all(np.isfinite(sess.run(loss)))


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_sharded_variable_is_one_logical_table(strategy):
    """A TF2 ShardedVariable (consecutive ranges) is the logical table under either strategy,
    in both passes."""
    sharded_variable = tf.__internal__.distribute.ShardedVariable
    p = make_problem(2, 0.5)
    w = sharded_variable(
        [tf.Variable(s, dtype=tf.float32) for s in to_shards(p["w"], NUM_SHARDS, "div")]
    )
    b = sharded_variable(
        [tf.Variable(s, dtype=tf.float32) for s in to_shards(p["b"], NUM_SHARDS, "div")]
    )
    x = tf.constant(p["x"], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = ts_nn.rank_sampled_softmax_loss(
            w,
            b,
            p["labels"],
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            2,
            tf_sampled_values(p["sampled_values"]),
            0.5,
            True,
            strategy,
        )
        total = tf.reduce_sum(loss * tf.constant(p["upstream"], tf.float32))
    grads = tape.gradient(total, [*w.variables, x])
    want = np_rank_sampled_softmax(
        p["w"],
        p["b"],
        p["labels"],
        p["x"],
        p["sampled_values"],
        NUM_RESAMPLED,
        0.5,
        True,
        p["upstream"],
    )
    np.testing.assert_allclose(loss.numpy(), want[0], **TOL)
    np.testing.assert_allclose(from_shards([dense(g) for g in grads[:-1]], "div"), want[1], **TOL)
    np.testing.assert_allclose(dense(grads[-1]), want[3], **TOL)


# --------------------------------------------------------------------------------------------
# Issue 22: TF 1.15 contrib's words, and what TF accepts
# --------------------------------------------------------------------------------------------


# TF 1.15 sampling_ops_test.py's regexes (testInvalidNumSampled0/1, testMissingPartitionStrategy),
# through the compat shim.
@pytest.mark.parametrize(
    "overrides, tf_regex",
    [
        (
            dict(num_sampled=3, num_resampled=3, sampled_values=None),
            r"num_resampled \(3\) must be less than num_sampled \(3\)",
        ),
        (
            dict(num_sampled=2, num_resampled=3, sampled_values=None),
            r"num_resampled \(3\) must be less than num_sampled \(2\)",
        ),
        (
            dict(num_sampled=2, num_resampled=1, sampled_values=None, partition_strategy=None),
            r"unsupported partition_strategy \(None\)",
        ),
        (
            dict(num_sampled=NUM_CLASSES + 1, num_resampled=2),
            rf"num_sampled \({NUM_CLASSES + 1}\) cannot be greater than num_classes \({NUM_CLASSES}\)",
        ),
    ],
    ids=["equal", "greater", "strategy", "num_classes"],
)
def test_contrib_shim_errors_hold_tf_115_words(overrides, tf_regex):
    from tf_sampling.compat.v1.contrib import nn as contrib_nn

    p = make_problem(1, 1.0)
    args = dict(
        weights=p["w"].astype(np.float32),
        biases=p["b"].astype(np.float32),
        labels=p["labels"],
        inputs=p["x"].astype(np.float32),
        num_sampled=NUM_SAMPLED,
        num_resampled=NUM_RESAMPLED,
        num_classes=NUM_CLASSES,
        num_true=1,
        sampled_values=tf_sampled_values(p["sampled_values"]),
        resampling_temperature=1.0,
        remove_accidental_hits=True,
        partition_strategy="div",
    )
    args.update(overrides)
    with tf.Graph().as_default(), pytest.raises(ValueError, match=tf_regex) as err:
        contrib_nn.rank_sampled_softmax_loss(**args)
    # Ours too: the argument and the value received.
    name = "partition_strategy" if "strategy" in tf_regex else "num_sampled"
    assert f"`{name}`" in str(err.value)


@pytest.mark.parametrize("num_sampled", [NUM_RESAMPLED + 1, NUM_CLASSES])
def test_candidates_win_over_a_differing_num_sampled(num_sampled):
    p = make_problem(2, 1.0)
    w, b, x = (p[k].astype(np.float32) for k in ("w", "b", "x"))
    sv = tf_sampled_values(p["sampled_values"])
    with pytest.warns(UserWarning, match=f"`num_sampled`={num_sampled} differs from the 9"):
        got = ts_nn.rank_sampled_softmax_loss(
            w, b, p["labels"], x, num_sampled, NUM_RESAMPLED, NUM_CLASSES, 2, sv, 1.0, True, "mod"
        )
    want = np_rank_sampled_softmax(
        p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, 1.0, True
    )[0]
    np.testing.assert_allclose(got.numpy(), want, **TOL)


def test_as_many_candidates_as_num_resampled_keeps_them_all():
    # TF's top_k keeps all of them; fewer would fail there.
    p = make_problem(1, 1.0)
    w, b, x = (p[k].astype(np.float32) for k in ("w", "b", "x"))
    candidates, true_ec, sampled_ec = p["sampled_values"]
    four = (candidates[:NUM_RESAMPLED], true_ec, sampled_ec[:NUM_RESAMPLED])
    with pytest.warns(UserWarning, match="num_sampled"):
        got = ts_nn.rank_sampled_softmax_loss(
            w,
            b,
            p["labels"],
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            1,
            tf_sampled_values(four),
            1.0,
            False,
            "mod",
        )
    want = np_sampled_softmax(p["w"], p["b"], p["labels"], p["x"], four, False)[0]
    np.testing.assert_allclose(got.numpy(), want, **TOL)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_whole_number_float_labels_equal_integer_labels(dtype):
    p = make_problem(2, 0.5)
    w, b = tf.Variable(p["w"].astype(np.float32)), tf.Variable(p["b"].astype(np.float32))
    x = tf.constant(p["x"].astype(np.float32))
    sv = tf_sampled_values(p["sampled_values"])
    results = []
    for labels in (tf.cast(p["labels"], dtype), tf.constant(p["labels"])):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = ts_nn.rank_sampled_softmax_loss(
                w, b, labels, x, NUM_SAMPLED, NUM_RESAMPLED, NUM_CLASSES, 2, sv, 0.5, True, "div"
            )
        results.append([loss, *[dense(g) for g in tape.gradient(loss, [w, b, x])]])
    for got, want in zip(*results, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_allclose(
        results[0][0],
        np_rank_sampled_softmax(
            p["w"], p["b"], p["labels"], p["x"], p["sampled_values"], NUM_RESAMPLED, 0.5, True
        )[0],
        **TOL,
    )
