"""Variable-count labels (issue 26) in rank_sampled_softmax_loss and its default sampler."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tf_sampling import ops
from tf_sampling._core import sharding
from tf_sampling._core.rank_sampled_softmax import rank_resample
from tf_sampling.samplers import xla_defaults

NUM_CLASSES, DIM, NUM_SAMPLED, NUM_RESAMPLED, MAX_TRUE = 30, 5, 12, 6, 3
ROWS = [[4], [7, 2, 9], [11, 5], [0], [13, 8, 21]]
TEMPERATURE = 0.7


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32)
    b = rng.normal(size=(NUM_CLASSES,)).astype(np.float32)
    x = rng.normal(size=(len(ROWS), DIM)).astype(np.float32)
    # Candidates holding true classes of some rows (accidental hits).
    others = np.setdiff1d(np.arange(NUM_CLASSES), [4, 2, 5])
    sampled = np.concatenate([rng.choice(others, NUM_SAMPLED - 3, replace=False), [4, 2, 5]])
    sampled = rng.permutation(sampled).astype(np.int64)
    true_expected = rng.uniform(0.1, 0.9, size=(len(ROWS), MAX_TRUE)).astype(np.float32)
    sampled_expected = rng.uniform(0.1, 0.9, size=(NUM_SAMPLED,)).astype(np.float32)
    cot = rng.uniform(0.5, 1.5, size=(len(ROWS),)).astype(np.float32)
    return w, b, x, sampled, true_expected, sampled_expected, cot


def _padded(pad=-1):
    return np.array([r + [pad] * (MAX_TRUE - len(r)) for r in ROWS], np.int64)


def _grads(fn, w, b, x, cot):
    w, b, x = tf.constant(w), tf.constant(b), tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch([w, b, x])
        loss = fn(w, b, x)
    grads = tape.gradient(loss, [w, b, x], output_gradients=tf.constant(cot))
    return [loss.numpy()] + [tf.convert_to_tensor(g).numpy() for g in grads]


@pytest.mark.parametrize("form", ["ragged", "padded"])
def test_rank_loss_matches_per_example_tf_losses(form):
    w, b, x, sampled, true_exp, sampled_exp, cot = _problem()
    if form == "ragged":
        labels = tf.ragged.constant(ROWS, dtype=tf.int64)
    else:
        labels = tsn.label_set(_padded(), padding_id=-1)
    # Padded slots' expected counts are never read (0 would fail a check).
    true_exp = np.where(_padded() >= 0, true_exp, 0.0).astype(np.float32)

    def rank(w, b, x):
        return tsn.rank_sampled_softmax_loss(
            w,
            b,
            labels,
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            MAX_TRUE,
            (sampled, true_exp, sampled_exp),
            TEMPERATURE,
            True,
            "mod",
        )

    got = _grads(rank, w, b, x, cot)
    # The kept candidates depend on the whole batch, not on the labels.
    table = sharding.class_tables(
        tf.constant(w), tf.constant(b), tf.constant(x), NUM_CLASSES, "mod"
    )
    kept, _, kept_exp = rank_resample(
        *table,
        tf.constant(x),
        tuple(map(tf.constant, (sampled, true_exp, sampled_exp))),
        NUM_RESAMPLED,
        TEMPERATURE,
        tf.float32,
    )

    def per_example(w, b, x):
        losses = []
        for i, row in enumerate(ROWS):
            losses.append(
                tf.compat.v1.nn.sampled_softmax_loss(
                    w,
                    b,
                    tf.constant([row], tf.int64),
                    x[i : i + 1],
                    NUM_RESAMPLED,
                    NUM_CLASSES,
                    num_true=len(row),
                    sampled_values=(kept, true_exp[i : i + 1, : len(row)], kept_exp),
                    remove_accidental_hits=True,
                )
            )
        return tf.concat(losses, 0)

    want = _grads(per_example, w, b, x, cot)
    for name, g, r in zip(("loss", "dw", "db", "dx"), got, want, strict=True):
        np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-6, err_msg=name)


def test_full_rows_equal_fixed_num_true_bit_for_bit():
    w, b, x, sampled, true_exp, sampled_exp, cot = _problem(1)
    full = np.array([[3, 7, 11], [2, 2, 5], [0, 29, 13], [8, 1, 4], [6, 9, 21]], np.int64)

    def rank(labels):
        return lambda w, b, x: tsn.rank_sampled_softmax_loss(
            w,
            b,
            labels,
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            MAX_TRUE,
            (sampled, true_exp, sampled_exp),
            TEMPERATURE,
            True,
            "div",
        )

    fixed = _grads(rank(full), w, b, x, cot)
    got = _grads(rank(tsn.label_set(full, padding_id=-1)), w, b, x, cot)
    for g, r in zip(got, fixed, strict=True):
        np.testing.assert_array_equal(g, r)


def test_default_sampler_gets_only_the_real_labels(monkeypatch):
    w, b, x, *_ = _problem(2)
    seen = []
    real_op = ops.learned_unigram_candidate_sampler

    def spy(true_classes, **kw):
        seen.append(np.asarray(true_classes))
        return real_op(true_classes=true_classes, **kw)

    monkeypatch.setattr(ops, "learned_unigram_candidate_sampler", spy)
    loss = tsn.rank_sampled_softmax_loss(
        w,
        b,
        tsn.label_set(_padded(), padding_id=-1),
        x,
        NUM_SAMPLED,
        NUM_RESAMPLED,
        NUM_CLASSES,
        MAX_TRUE,
        None,
        TEMPERATURE,
        True,
        "mod",
    )
    assert np.isfinite(loss.numpy()).all()
    (got,) = seen
    np.testing.assert_array_equal(got[:, 0], [c for r in ROWS for c in r])


def test_compilable_default_sampler_counts_only_the_real_labels():
    w, b, x, *_ = _problem(3)
    xla_defaults.clear()
    padded = tf.constant(_padded())

    @tf.function(jit_compile=True)
    def step(p):
        return tsn.rank_sampled_softmax_loss(
            w,
            b,
            tsn.label_set(p, padding_id=-1),
            x,
            NUM_SAMPLED,
            NUM_RESAMPLED,
            NUM_CLASSES,
            MAX_TRUE,
            None,
            TEMPERATURE,
            True,
            "mod",
        )

    assert np.isfinite(step(padded).numpy()).all()
    counts = xla_defaults.default_sampler("learned_unigram", NUM_CLASSES).counts().numpy()
    want = np.bincount([c for r in ROWS for c in r], minlength=NUM_CLASSES)
    np.testing.assert_array_equal(counts, want)
    xla_defaults.clear()
