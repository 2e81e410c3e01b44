"""Samplers with variable-count labels (issue 26): padding never reaches the counts."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tf_sampling import samplers
from tf_sampling.samplers import compilable as compilable_samplers

RANGE = 20
ROWS = [[3], [7, 2, 9], [3, 5]]
PADDED = np.array([r + [-1] * (3 - len(r)) for r in ROWS], np.int64)
EXPECTED = np.bincount([c for r in ROWS for c in r], minlength=RANGE)


@pytest.mark.parametrize(
    "labels",
    [
        lambda: tf.ragged.constant(ROWS, dtype=tf.int64),
        lambda: tsn.label_set(PADDED, padding_id=-1),
        lambda: tsn.label_set(np.where(PADDED < 0, 0, PADDED), mask=PADDED >= 0),
    ],
    ids=["ragged", "padding_id", "mask"],
)
@pytest.mark.parametrize("compilable", [False, True])
def test_learned_unigram_counts_only_real_labels(labels, compilable):
    if compilable:
        sampler = compilable_samplers.CompilableLearnedUnigramSampler(range_max=RANGE, seed=1)
    else:
        sampler = samplers.LearnedUnigramSampler(range_max=RANGE, seed=1)
    sampled, true_expected, sampled_expected = sampler.sample(labels(), 3, 4)
    np.testing.assert_array_equal(sampler.counts().numpy(), EXPECTED)
    assert true_expected.shape == (3, 3)
    te = true_expected.numpy()
    # Padded slots: 1, never read. Real slots: the expected count of the
    # class, the same as asked one at a time from a fresh sampler.
    assert (te[PADDED < 0] == 1.0).all()
    if compilable:
        fresh = compilable_samplers.CompilableLearnedUnigramSampler(range_max=RANGE, seed=1)
    else:
        fresh = samplers.LearnedUnigramSampler(range_max=RANGE, seed=1)
    _, ref, _ = fresh.sample(np.where(PADDED < 0, 0, PADDED), 3, 4)
    np.testing.assert_allclose(te[PADDED >= 0], ref.numpy()[PADDED >= 0], rtol=1e-6)


def test_compilable_learned_unigram_label_set_under_xla():
    sampler = compilable_samplers.CompilableLearnedUnigramSampler(range_max=RANGE, seed=1)
    step = tf.function(
        lambda p: sampler.sample(tsn.label_set(p, padding_id=-1), 3, 4), jit_compile=True
    )
    _, te, _ = step(tf.constant(PADDED))
    np.testing.assert_array_equal(sampler.counts().numpy(), EXPECTED)
    assert (te.numpy()[PADDED < 0] == 1.0).all()


def test_sampled_loss_with_learned_unigram_values():
    """A step as a user writes it: the counts hold the real labels only."""
    sampler = samplers.LearnedUnigramSampler(range_max=RANGE, seed=2)
    labels = tf.ragged.constant(ROWS, dtype=tf.int64)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(RANGE, 4)).astype(np.float32)
    loss = tsn.sampled_softmax_loss(
        w,
        np.zeros(RANGE, np.float32),
        labels,
        rng.normal(size=(3, 4)).astype(np.float32),
        5,
        RANGE,
        3,
        sampled_values=sampler.sample(labels, 3, 5),
    )
    assert np.isfinite(loss.numpy()).all()
    np.testing.assert_array_equal(sampler.counts().numpy(), EXPECTED)
