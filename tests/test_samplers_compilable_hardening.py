"""Compilable samplers and the C++ op on bad input and skewed weights (issue 22).

Skewed unique samples end (eagerly, in a graph, under XLA) with the law of
rejection sampling; out-of-range true classes get TensorFlow's words, or NaN
expected counts where XLA drops the check; seeds and counts that do not fit
an int64 are named. Needs the compiled op library for the C++ op's checks.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.ops as ts_ops
from tf_sampling import samplers
from tf_sampling.samplers import compilable
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler

INT64_MAX = 2**63 - 1


def _skewed(name):
    if name == "learned_unigram":
        sampler = compilable.CompilableLearnedUnigramSampler(5, seed=7)
        sampler.set_counts([2**40, 0, 0, 0, 0])
        return sampler, 3
    return compilable.CompilableFixedUnigramSampler(3, unigrams=[1e30, 1.0, 1.0], seed=7), 2


# 1. Unique samples from skewed weights end, with the law of going on rejecting.


@pytest.mark.parametrize("name", ["learned_unigram", "fixed_unigram"])
def test_unique_samples_from_skewed_weights_end_compiled_or_not(name):
    sampler, num_sampled = _skewed(name)
    twin, _ = _skewed(name)  # same seed, same state
    empty = tf.zeros([0, 1], tf.int64)
    graph = tf.function(lambda: sampler.sample(empty, 1, num_sampled))
    jit = tf.function(lambda: twin.sample(empty, 1, num_sampled), jit_compile=True)
    for _ in range(2):
        plain, compiled = graph(), jit()
        for sampled, _, sampled_expected in (plain, compiled):
            values = sampled.numpy()
            # The heavy class comes first; the others are distinct and valid.
            assert values[0] == 0 and len(set(values.tolist())) == num_sampled
            assert np.all((values >= 0) & (values < sampler.range_max))
            expected = sampled_expected.numpy()
            assert expected[0] == pytest.approx(1.0)
            assert np.all((expected[1:] > 0) & (expected[1:] <= 1))
        np.testing.assert_array_equal(plain[0].numpy(), compiled[0].numpy())
        np.testing.assert_allclose(plain[2].numpy(), compiled[2].numpy(), rtol=1e-6)


def test_eager_unique_sample_from_skewed_weights_ends():
    sampler, num_sampled = _skewed("fixed_unigram")
    sampled, true_expected, _ = sampler.sample([[1]], 1, num_sampled)
    assert sampled.numpy()[0] == 0 and sampled.numpy()[1] in (1, 2)
    assert 0 < true_expected.numpy()[0, 0] <= 1


def test_completed_unique_samples_follow_the_law_of_rejection_sampling():
    """Class 0 weighs ~10^6, the others 1, 2, 4, 8: a second class takes ~6.7e4
    draws, so the rejection rounds (16 x 64 draws) mostly run out and the rest is
    drawn directly. The second class must still be in proportion to the weights
    left, and the number of draws geometric with mean total / 15 (read back from
    the expected count of the second class, -expm1(tries * log1p(-p)))."""
    counts = [10**6, 0, 1, 3, 7]
    total = sum(counts) + 5
    calls = 1200
    sampler = compilable.CompilableLearnedUnigramSampler(5, seed=21)
    sampler.set_counts(counts)
    empty = tf.zeros([0, 1], tf.int64)

    @tf.function
    def draws():
        outputs = tf.TensorArray(tf.int64, calls), tf.TensorArray(tf.float32, calls)
        for i in tf.range(calls):
            sampled, _, expected = sampler.sample(empty, 1, 2)
            outputs = outputs[0].write(i, sampled), outputs[1].write(i, expected)
        return outputs[0].stack(), outputs[1].stack()

    sampled, expected = (t.numpy() for t in draws())
    assert np.all(sampled[:, 0] == 0)
    second = sampled[:, 1]
    observed = np.bincount(second, minlength=5)[1:]
    weights = np.array([1, 2, 4, 8]) / 15
    chi2 = float(((observed - calls * weights) ** 2 / (calls * weights)).sum())
    assert chi2 < 16.3, (observed, chi2)  # 3 dof, p = 0.001
    p = (np.asarray(counts)[second] + 1) / total
    tries = np.log1p(-expected[:, 1].astype(np.float64)) / np.log1p(-p)
    mean = total / 15
    # Geometric: sd = mean; 5 sd of the mean of `calls` draws (float32 rounding included).
    assert abs(np.mean(tries) - mean) < 5 * mean / math.sqrt(calls) + 0.02 * mean
    np.testing.assert_array_equal(sampler.counts().numpy(), counts)


def test_unique_samples_that_rejection_finishes_are_unchanged_by_the_completion():
    # A uniform sample of all 40 classes: the coupon collector needs ~171 draws,
    # well inside the rounds, so every class appears once and no completion runs.
    sampler = compilable.CompilableUniformSampler(40, seed=3)
    sampled, _, expected = sampler.sample([[0]], 1, 40)
    assert sorted(sampled.numpy().tolist()) == list(range(40))
    tries = math.log1p(-float(expected.numpy()[0])) / math.log1p(-1 / 40)
    assert 40 < tries < 16 * 80


# 2. set_counts refuses totals past int64, before anything changes.


@pytest.mark.parametrize(
    "counts",
    [[2**62, 2**62, 0, 0, 0], [2**62] * 4 + [0], [INT64_MAX - 4, 0, 0, 0, 0]],
    ids=["overflow", "wraps_to_zero", "total_past_int64"],
)
def test_compilable_set_counts_refuses_totals_past_int64(counts):
    sampler = compilable.CompilableLearnedUnigramSampler(5, seed=1)
    sampler.set_counts([1, 2, 3, 4, 5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`counts` must sum to at most"):
        sampler.set_counts(counts)
    np.testing.assert_array_equal(sampler.counts().numpy(), [1, 2, 3, 4, 5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`counts` must sum"):
        tf.function(sampler.set_counts)(tf.constant(counts, tf.int64))
    np.testing.assert_array_equal(sampler.counts().numpy(), [1, 2, 3, 4, 5])
    # The sampler still works from the old counts.
    sampled, _, _ = sampler.sample([[0]], 1, 3)
    assert np.all((sampled.numpy() >= 0) & (sampled.numpy() < 5))


def test_compilable_learned_unigram_at_the_int64_limit_refuses_more_counts():
    sampler = compilable.CompilableLearnedUnigramSampler(5, unique=False, seed=1)
    sampler.set_counts([INT64_MAX - 5, 0, 0, 0, 0])  # total weight exactly 2^63 - 1
    step = int(sampler.step.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"total weight.*2\^63 - 1"):
        sampler.sample([[1]], 1, 2)
    assert int(sampler.step.numpy()) == step
    np.testing.assert_array_equal(sampler.counts().numpy(), [INT64_MAX - 5, 0, 0, 0, 0])
    sampled, _, _ = sampler.sample(tf.zeros([0, 1], tf.int64), 1, 2)
    assert np.all((sampled.numpy() >= 0) & (sampled.numpy() < 5))


# 3. Seeds that are not int64 are named.


@pytest.mark.parametrize("seed", [2**63, 2**64 + 1, -(2**63) - 1])
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("name", ["log_uniform", "uniform", "learned_unigram"])
def test_seeds_outside_int64_are_named(name, compiled, seed):
    with pytest.raises(ValueError, match=rf"`seed` must fit in an int64.*seed={seed}"):
        samplers.get({"name": name, "compilable": compiled}, 10, seed=seed)


def test_largest_int64_seed_is_taken():
    sampler = samplers.get({"name": "uniform", "compilable": True}, 10, seed=INT64_MAX)
    assert int(sampler.key.numpy()) == INT64_MAX
    assert sampler.sample([[1]], 1, 3)[0].shape == (3,)


# 4. Out-of-range true classes: TensorFlow's words, or NaN under XLA.


def _tf_message(true_class, range_max=5):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        tf.random.uniform_candidate_sampler(
            tf.constant([[true_class]], tf.int64), 1, 2, True, range_max
        )
    # "`true_candidate` out of range [0, 5), received 7", without TF's op suffix.
    message = str(info.value)
    start = message.index("`true_candidate`")
    return message[start : message.index(" [Op:", start)]


def _compilable(name, range_max=5, unique=True):
    options = {"unigrams": [1.0] * range_max} if name == "fixed_unigram" else {}
    return compilable.get(name, range_max, unique=unique, seed=3, **options)


NAMES = ["log_uniform", "uniform", "fixed_unigram", "learned_unigram"]


@pytest.mark.parametrize("bad", [7, 5, -1])
@pytest.mark.parametrize("name", NAMES)
def test_compilable_out_of_range_true_class_gets_tensorflows_words(name, bad):
    sampler = _compilable(name)
    step = int(sampler.step.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        sampler.sample([[1], [bad]], 1, 2)
    message = str(info.value)
    assert _tf_message(bad) in message
    assert f"true_classes[1, 0] = {bad}" in message
    assert int(sampler.step.numpy()) == step  # nothing drawn or counted
    graph = tf.function(lambda tc: sampler.sample(tc, 1, 2))
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(_tf_message(bad))):
        graph(tf.constant([[1], [bad]], tf.int64))


@pytest.mark.parametrize("name", NAMES)
def test_compiled_out_of_range_true_class_gets_a_nan_expected_count(name):
    # With replacement: the check does not depend on it, and it compiles faster.
    sampler = _compilable(name, unique=False)
    reference = _compilable(name, unique=False)
    jit = tf.function(lambda tc: sampler.sample(tc, 1, 2), jit_compile=True)
    _, true_expected, sampled_expected = jit(tf.constant([[1], [9], [-2], [4]], tf.int64))
    values = true_expected.numpy()[:, 0]
    assert np.isnan(values[1]) and np.isnan(values[2])
    assert np.all(np.isfinite(sampled_expected.numpy()))
    # The valid rows have the values of the same call on valid classes alone.
    _, want, _ = reference.sample([[1], [1], [1], [4]], 1, 2)
    np.testing.assert_allclose(values[[0, 3]], want.numpy()[[0, 3], 0], rtol=1e-6)
    if name == "learned_unigram":  # invalid classes are left out of the counts
        np.testing.assert_array_equal(sampler.counts().numpy(), [0, 1, 0, 0, 1])


# 5. The C++ op speaks TensorFlow's words too.


@pytest.mark.parametrize("bad", [7, -1])
def test_op_out_of_range_true_class_gets_tensorflows_words(bad):
    want = _tf_message(bad)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        ts_ops.learned_unigram_candidate_sampler(
            tf.constant([[0], [bad]], tf.int64), 1, 2, True, 5, seed=1
        )
    assert want in str(info.value) and f"true_classes[1, 0] = {bad}" in str(info.value)
    sampler = LearnedUnigramSampler(5, seed=1)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        sampler.sample([[bad]], 1, 2)
    assert want in str(info.value) and f"true_classes[0, 0] = {bad}" in str(info.value)
    np.testing.assert_array_equal(sampler.counts().numpy(), [0] * 5)
