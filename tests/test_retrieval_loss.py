"""tf_sampling.nn.in_batch_softmax_loss against a NumPy reference, forward and gradient."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import nn
from tf_sampling._core import retrieval_loss

B, M, D = 6, 3, 4


def _reference(
    q,
    c,
    *,
    ids=None,
    p=None,
    extra=None,
    extra_ids=None,
    extra_p=None,
    qids=None,
    extra_qids=None,
    extra_mask=None,
    temperature=1.0,
    weight=None,
    upstream=None,
):
    """Loss and gradients (dq, dc, dextra) by the definition, one row and column at a time."""
    q, c = np.asarray(q, np.float64), np.asarray(c, np.float64)
    cols = c if extra is None else np.concatenate([c, np.asarray(extra, np.float64)])
    n = len(cols)
    col_ids = None if ids is None else list(ids) + ([] if extra is None else list(extra_ids))
    col_q = None if qids is None else list(qids) + ([] if extra_qids is None else list(extra_qids))
    z = q @ cols.T / temperature
    if p is not None:
        z = z - np.log(np.concatenate([p, [] if extra is None else extra_p]))[None, :]
    loss = np.zeros(B)
    dz = np.zeros_like(z)
    upstream = np.ones(B) if upstream is None else upstream
    for i in range(B):
        keep = []
        for j in range(n):
            drop = False
            if j != i:
                if col_ids is not None and col_ids[j] == col_ids[i]:
                    drop = True
                if col_q is not None and j < len(col_q) and col_q[j] == col_q[i]:
                    drop = True
                if col_q is not None and col_ids is not None:
                    for k in range(len(col_q)):
                        if col_q[k] == col_q[i] and col_ids[k] == col_ids[j]:
                            drop = True
                if extra_mask is not None and j >= B and not extra_mask[j - B]:
                    drop = True
            if not drop:
                keep.append(j)
        zk = z[i, keep]
        top = zk.max()
        lse = top + np.log(np.exp(zk - top).sum())
        w = 1.0 if weight is None else weight[i]
        loss[i] = w * (lse - z[i, i])
        dz[i, keep] = w * upstream[i] * np.exp(zk - lse)
        dz[i, i] -= w * upstream[i]
    dq = dz @ cols / temperature
    dcols = dz.T @ q / temperature
    return loss, dq, dcols[:B], dcols[B:]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, D)).astype(np.float32)
    c = rng.normal(size=(B, D)).astype(np.float32)
    extra = rng.normal(size=(M, D)).astype(np.float32)
    ids = np.array([3, 7, 3, 9, 1, 7], np.int64)  # hits: (0, 2) and (1, 5)
    extra_ids = np.array([9, 4, 3], np.int64)  # hits rows 3 (id 9) and 0/2 (id 3)
    p = rng.uniform(0.05, 2.0, size=B).astype(np.float32)
    extra_p = rng.uniform(0.05, 2.0, size=M).astype(np.float32)
    qids = np.array([10, 11, 12, 10, 13, 12], np.int64)  # row 0's query also owns column 3
    weight = rng.uniform(0.1, 2.0, size=B).astype(np.float32)
    upstream = rng.normal(size=B)
    return dict(
        q=q,
        c=c,
        extra=extra,
        ids=ids,
        extra_ids=extra_ids,
        p=p,
        extra_p=extra_p,
        qids=qids,
        weight=weight,
        upstream=upstream,
    )


def _tf_loss_and_grads(d, **kwargs):
    q, c = tf.constant(d["q"]), tf.constant(d["c"])
    extra = tf.constant(d["extra"]) if "extra_negative_embeddings" in kwargs else None
    with tf.GradientTape() as tape:
        tape.watch([q, c] + ([extra] if extra is not None else []))
        if extra is not None:
            kwargs["extra_negative_embeddings"] = extra
        loss = nn.in_batch_softmax_loss(q, c, **kwargs)
        total = tf.reduce_sum(loss * tf.constant(d["upstream"], loss.dtype))
    grads = tape.gradient(total, [q, c] + ([extra] if extra is not None else []))
    return loss.numpy(), [g.numpy() for g in grads]


CASES = {
    "plain": ({}, {}),
    "hits": ({"candidate_ids": "ids"}, {"ids": "ids"}),
    "logq": ({"candidate_sampling_probability": "p"}, {"p": "p"}),
    "hits_logq_weights_temperature": (
        {
            "candidate_ids": "ids",
            "candidate_sampling_probability": "p",
            "sample_weight": "weight",
            "temperature": 0.5,
        },
        {"ids": "ids", "p": "p", "weight": "weight", "temperature": 0.5},
    ),
    "extras": (
        {
            "candidate_ids": "ids",
            "candidate_sampling_probability": "p",
            "extra_negative_embeddings": "extra",
            "extra_negative_ids": "extra_ids",
            "extra_negative_sampling_probability": "extra_p",
        },
        {"ids": "ids", "p": "p", "extra": "extra", "extra_ids": "extra_ids", "extra_p": "extra_p"},
    ),
    "query_ids_only": ({"query_ids": "qids"}, {"qids": "qids"}),
    "query_and_candidate_ids": (
        {
            "query_ids": "qids",
            "candidate_ids": "ids",
            "extra_negative_embeddings": "extra",
            "extra_negative_ids": "extra_ids",
        },
        {"qids": "qids", "ids": "ids", "extra": "extra", "extra_ids": "extra_ids"},
    ),
}


def _resolve(d, spec):
    return {k: (d[v] if isinstance(v, str) else v) for k, v in spec.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_gradient_equal_the_reference(case):
    d = _data()
    tf_spec, ref_spec = CASES[case]
    loss, grads = _tf_loss_and_grads(d, **_resolve(d, tf_spec))
    ref = _reference(d["q"], d["c"], upstream=d["upstream"], **_resolve(d, ref_spec))
    np.testing.assert_allclose(loss, ref[0], rtol=2e-5, atol=2e-5)
    for got, want in zip(grads, ref[1:], strict=False):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_the_data_exercise_the_mask_and_the_correction():
    # If the hit mask or the log p term were dropped, the cases above would fail:
    # the references with and without them differ well beyond the tolerance.
    d = _data()
    full = _reference(d["q"], d["c"], ids=d["ids"], p=d["p"])[0]
    no_mask = _reference(d["q"], d["c"], p=d["p"])[0]
    no_logq = _reference(d["q"], d["c"], ids=d["ids"])[0]
    assert np.abs(full - no_mask).max() > 1e-2
    assert np.abs(full - no_logq).max() > 1e-2
    qmask = _reference(d["q"], d["c"], ids=d["ids"], qids=d["qids"])[0]
    assert np.abs(qmask - _reference(d["q"], d["c"], ids=d["ids"])[0]).max() > 1e-2


def test_a_loss_without_the_hit_mask_fails_the_comparison(monkeypatch):
    d = _data()
    monkeypatch.setattr(retrieval_loss, "_matches", lambda *args: None)
    loss, _ = _tf_loss_and_grads(d, candidate_ids=d["ids"])
    ref = _reference(d["q"], d["c"], ids=d["ids"])[0]
    assert not np.allclose(loss, ref, rtol=2e-5, atol=2e-5)


def test_extra_mask_query_ids_of_extras_and_string_ids():
    d = _data()
    extra_mask = np.array([True, False, True])
    extra_qids = np.array([10, 14], np.int64)  # extra 0 is a positive of query 10
    sids = np.array([f"m{i}" for i in d["ids"]])
    extra_sids = np.array([f"m{i}" for i in d["extra_ids"]])
    loss, grads = _tf_loss_and_grads(
        d,
        candidate_ids=sids,
        extra_negative_embeddings=None,
        extra_negative_ids=extra_sids,
        query_ids=[str(x) for x in d["qids"]],
        extra_negative_query_ids=[str(x) for x in extra_qids],
        extra_negative_mask=extra_mask,
    )
    ref = _reference(
        d["q"],
        d["c"],
        ids=d["ids"],
        extra=d["extra"],
        extra_ids=d["extra_ids"],
        qids=d["qids"],
        extra_qids=extra_qids,
        extra_mask=extra_mask,
        upstream=d["upstream"],
    )
    np.testing.assert_allclose(loss, ref[0], rtol=2e-5, atol=2e-5)
    for got, want in zip(grads, ref[1:], strict=False):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_inputs_compute_in_float32(dtype):
    d = _data()
    q = tf.cast(d["q"], dtype)
    c = tf.cast(d["c"], dtype)
    with tf.GradientTape() as tape:
        tape.watch([q, c])
        loss = nn.in_batch_softmax_loss(q, c, candidate_ids=d["ids"])
    assert loss.dtype == tf.float32
    dq = tape.gradient(loss, q)
    assert dq.dtype == tf.as_dtype(dtype)
    ref = _reference(tf.cast(q, tf.float32).numpy(), tf.cast(c, tf.float32).numpy(), ids=d["ids"])
    np.testing.assert_allclose(loss.numpy(), ref[0], rtol=1e-5, atol=1e-5)


def test_graph_and_xla_equal_eager():
    d = _data()
    args = dict(
        candidate_ids=tf.constant(d["ids"]),
        candidate_sampling_probability=d["p"],
        query_ids=tf.constant(d["qids"]),
        sample_weight=d["weight"],
    )

    def f(q, c):
        with tf.GradientTape() as tape:
            tape.watch([q, c])
            loss = nn.in_batch_softmax_loss(q, c, **args)
            total = tf.reduce_sum(loss * tf.range(1.0, 7.0))
        return (loss, *tape.gradient(total, [q, c]))

    q, c = tf.constant(d["q"]), tf.constant(d["c"])
    eager = [t.numpy() for t in f(q, c)]
    graph = [t.numpy() for t in tf.function(f)(q, c)]
    xla = [t.numpy() for t in tf.function(f, jit_compile=True)(q, c)]
    for g, x, e in zip(graph, xla, eager, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(x, e, rtol=1e-5, atol=1e-6)


def test_all_duplicates_keep_a_finite_loss_and_gradient():
    # Every column is a hit: only the diagonal stays; the loss is 0, no NaN.
    q = tf.random.normal([4, 3], seed=1)
    c = tf.random.normal([4, 3], seed=2)
    with tf.GradientTape() as tape:
        tape.watch(q)
        loss = nn.in_batch_softmax_loss(q, c, candidate_ids=[5, 5, 5, 5])
    np.testing.assert_allclose(loss.numpy(), np.zeros(4), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, q).numpy(), np.zeros([4, 3]), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": True}, TypeError, "temperature"),
        ({"candidate_ids": [1.0] * B}, TypeError, "candidate_ids"),
        ({"candidate_ids": [1] * (B + 1)}, ValueError, "candidate_ids"),
        (
            {"candidate_sampling_probability": [0.5] * (B - 1) + [0.0]},
            ValueError,
            "candidate_sampling_probability",
        ),
        ({"extra_negative_ids": [1]}, ValueError, "extra_negative_ids"),
        (
            {"extra_negative_embeddings": np.ones([2, D], np.float32), "candidate_ids": [1] * B},
            ValueError,
            "extra_negative_ids",
        ),
        (
            {"extra_negative_embeddings": np.ones([2, D + 1], np.float32)},
            ValueError,
            "extra_negative_embeddings",
        ),
        (
            {
                "extra_negative_embeddings": np.ones([2, D], np.float32),
                "candidate_sampling_probability": [1.0] * B,
            },
            ValueError,
            "extra_negative_sampling_probability",
        ),
        ({"sample_weight": [1.0] * (B + 2)}, ValueError, "sample_weight"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, text):
    d = _data()
    with pytest.raises(error, match=text):
        nn.in_batch_softmax_loss(d["q"], d["c"], **kwargs)


def test_bad_candidate_shape_and_runtime_probability():
    d = _data()
    with pytest.raises(ValueError, match="candidate_embeddings"):
        nn.in_batch_softmax_loss(d["q"], d["c"][:-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="candidate_sampling_probability"):
        nn.in_batch_softmax_loss(
            d["q"], d["c"], candidate_sampling_probability=tf.constant([1.0] * (B - 1) + [-1.0])
        )


def test_removed_columns_never_drop_the_diagonal():
    ids = tf.constant([4, 4, 2], tf.int64)
    drop = retrieval_loss.removed_columns(ids, tf.concat([ids, [4]], 0), None, None).numpy()
    np.testing.assert_array_equal(
        drop, [[False, True, False, True], [True, False, False, True], [False] * 4]
    )
