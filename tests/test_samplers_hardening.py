"""Samplers never give a silent wrong number, a hang or an unclear error (issue 12).

Needs the compiled op library (CI builds it first).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.ops as ts_ops
from tf_sampling import samplers
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler

INT64_MAX = 2**63 - 1


def state(sampler):
    return sampler.tree.numpy().copy(), int(sampler.offset.numpy())


def assert_state_unchanged(sampler, before):
    np.testing.assert_array_equal(sampler.tree.numpy(), before[0])
    assert int(sampler.offset.numpy()) == before[1]


# 1. The total weight range_max + sum(counts) never overflows int64.


def test_op_refuses_a_call_that_would_overflow_the_total_weight():
    range_max = INT64_MAX - 2
    sampler = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(tc, 1, 4, False, range_max, seed=3),
        input_signature=[tf.TensorSpec([None, 1], tf.int64)],
    )
    # Two true classes fit exactly: the total becomes 2^63 - 1.
    sampled, true_expected, sampled_expected = sampler(tf.constant([[range_max - 1]] * 2))
    assert np.all(sampled.numpy() >= 0) and np.all(sampled.numpy() < range_max)
    assert np.all(true_expected.numpy() > 0) and np.all(sampled_expected.numpy() > 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"total weight.*2\^63 - 1"):
        sampler(tf.constant([[0]], tf.int64))
    # Nothing was counted by the failed call: an empty batch still samples validly.
    sampled, _, sampled_expected = sampler(tf.zeros([0, 1], tf.int64))
    assert np.all(sampled.numpy() >= 0) and np.all(sampled.numpy() < range_max)
    assert np.all(sampled_expected.numpy() > 0)


def test_sampler_refuses_counts_and_updates_past_int64():
    sampler = LearnedUnigramSampler(4, unique=False, seed=2)
    before = state(sampler)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"counts must sum to at most"):
        sampler.set_counts([2**62, 2**62, 0, 0])
    assert_state_unchanged(sampler, before)
    sampler.set_counts([2**62, 2**62 - 10, 0, 0])  # Total 2^63 - 6.
    before = state(sampler)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"total weight.*2\^63 - 1"):
        sampler.sample([[1]] * 6, 1, 3)
    assert_state_unchanged(sampler, before)
    sampled, true_expected, _ = sampler.sample([[3]] * 5, 1, 8)
    assert np.all(sampled.numpy() >= 0) and np.all(sampled.numpy() < 4)
    np.testing.assert_allclose(true_expected.numpy(), 8 / 2**63, rtol=1e-6)
    assert sampler.counts().numpy().tolist() == [2**62, 2**62 - 10, 0, 5]


# 2. set_counts never truncates or misquotes.


@pytest.mark.parametrize(
    ("counts", "error", "pattern"),
    [
        ([1.7, 2.2, 0.0, 0.0], ValueError, r"`counts` must be finite whole.*\(0, 1\.7"),
        ([0.0, float("nan"), 0.0, 0.0], ValueError, r"`counts` must be finite whole.*\(1, nan"),
        ([0.0, 0.0, float("inf"), 0.0], ValueError, r"`counts`.*\(2, inf"),
        ([2.0**63, 0.0, 0.0, 0.0], ValueError, r"`counts` must be.*below 2\^63"),
        (["a", "b", "c", "d"], TypeError, r"`counts` must be integer.*string"),
        ([True, False, True, True], TypeError, r"`counts` must be integer.*bool"),
        ([2**63, 0, 0, 0], ValueError, r"`counts` must be.*int64.*out-of-range"),
        (np.array([2**63, 0, 0, 0], np.uint64), ValueError, r"`counts` must be below 2\^63"),
        ([1, 2, 3], ValueError, r"`counts` must have shape \[range_max\] = \[4\].*\(3,\)"),
        ([1, -2, 3, 0], tf.errors.InvalidArgumentError, r"counts\[1\] = -2"),
    ],
)
def test_set_counts_rejects_what_it_cannot_store_exactly(counts, error, pattern):
    sampler = LearnedUnigramSampler(4, seed=1)
    sampler.set_counts([1, 0, 0, 2])
    before = state(sampler)
    with pytest.raises(error, match=pattern):
        sampler.set_counts(counts)
    assert_state_unchanged(sampler, before)


def test_set_counts_takes_whole_floats_and_any_integer_dtype():
    sampler = LearnedUnigramSampler(4, seed=1)
    sampler.set_counts(np.array([1.0, 2.0, 0.0, 5.0], np.float32))
    assert sampler.counts().numpy().tolist() == [1, 2, 0, 5]
    sampler.set_counts(np.array([3, 0, 1, 2], np.uint8))
    assert sampler.counts().numpy().tolist() == [3, 0, 1, 2]


def test_set_counts_in_a_graph_checks_floats_at_run_time():
    sampler = LearnedUnigramSampler(4, seed=1)
    setter = tf.function(sampler.set_counts, input_signature=[tf.TensorSpec([None], tf.float64)])
    setter(tf.constant([4.0, 0.0, 0.0, 1.0], tf.float64))
    assert sampler.counts().numpy().tolist() == [4, 0, 0, 1]
    before = state(sampler)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`counts` must be finite whole"):
        setter(tf.constant([4.5, 0.0, 0.0, 1.0], tf.float64))
    assert_state_unchanged(sampler, before)


# 3. The count state is checked against range_max.


def test_set_counts_of_unknown_length_is_checked_when_run():
    sampler = LearnedUnigramSampler(5, seed=1)
    setter = tf.function(sampler.set_counts, input_signature=[tf.TensorSpec([None], tf.int64)])
    for wrong in ([1] * 8, [1] * 4):
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"shape \[range_max\] = \[5\], got shape \["
        ):
            setter(tf.constant(wrong, tf.int64))
    np.testing.assert_array_equal(sampler.counts().numpy(), np.zeros(5))
    setter(tf.constant([1, 2, 3, 4, 5], tf.int64))
    assert sampler.counts().numpy().tolist() == [1, 2, 3, 4, 5]


def test_checkpoint_of_another_range_max_is_refused_at_first_use(tmp_path):
    # range_max 8 and 5 give count trees of the same size (one block).
    saved = LearnedUnigramSampler(8, unique=False, seed=1)
    saved.set_counts([0, 0, 0, 0, 0, 100, 100, 100])
    path = tf.train.Checkpoint(sampler=saved).save(str(tmp_path / "ckpt"))
    restored = LearnedUnigramSampler(5, unique=False, seed=1)
    tf.train.Checkpoint(sampler=restored).restore(path)
    before = state(restored)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not one of range_max=5 classes"):
        restored.sample([[0]], 1, 16)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not one of range_max=5 classes"):
        restored.counts()
    assert_state_unchanged(restored, before)
    # A tree with the same counts below range_max and none above is the 5-class tree.
    saved.set_counts([3, 0, 1, 0, 0, 0, 0, 0])
    tf.train.Checkpoint(sampler=restored).restore(
        tf.train.Checkpoint(sampler=saved).save(str(tmp_path / "ckpt2"))
    )
    assert restored.counts().numpy().tolist() == [3, 0, 1, 0, 0]
    assert restored.sample([[0]], 1, 64)[0].numpy().max() < 5


@pytest.mark.parametrize("range_max, other", [(57, 64), (4_097, 4_100)])
def test_multi_level_tree_of_another_range_max_is_refused(range_max, other):
    from tf_sampling.samplers.learned_unigram import count_tree_size

    assert count_tree_size(range_max) == count_tree_size(other)
    source = LearnedUnigramSampler(other, seed=1)
    counts = np.zeros(other, np.int64)
    counts[-1] = 1
    source.set_counts(counts)
    target = LearnedUnigramSampler(range_max, seed=1)
    target.tree.assign(source.tree)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"range_max={range_max}"):
        target.sample([[0]], 1, 3)


# 4. Limits of range_max and num_sampled are named.


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (
            lambda: LearnedUnigramSampler(2**63 - 1),
            r"`range_max` must be <= 576460752303423488 \(.*bytes per class",
        ),
        (
            lambda: LearnedUnigramSampler(2**80),
            r"`range_max` must be <= \d+.*range_max=1208925819614629174706176",
        ),
        (
            lambda: ts_ops.learned_unigram_candidate_sampler([[0]], 1, 2, False, 2**63),
            r"`range_max` must be <= 9223372036854775807.*range_max=9223372036854775808",
        ),
        (
            lambda: ts_ops.learned_unigram_candidate_sampler([[0]], 1, 2**31, False, 10),
            r"`num_sampled` must be <= 2147483647.*num_sampled=2147483648",
        ),
        (
            lambda: LearnedUnigramSampler(10).sample([[0]], 1, 2**40),
            r"`num_sampled` must be <= 2147483647",
        ),
    ],
)
def test_out_of_range_sizes_are_named(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_huge_range_of_the_functional_op_still_works():
    sampled, true_expected, _ = ts_ops.learned_unigram_candidate_sampler(
        [[INT64_MAX - 2]], 1, 3, True, INT64_MAX - 1, seed=5
    )
    assert len(set(sampled.numpy().tolist())) == 3
    assert np.all(sampled.numpy() < INT64_MAX - 1)
    assert true_expected.numpy()[0, 0] > 0


# 5. Unique sampling from skewed counts finishes, with the law of rejection sampling.


@pytest.mark.parametrize("heavy", [2**26, 2**40, 2**62])
def test_unique_sampling_from_heavily_skewed_counts_returns(heavy):
    sampler = LearnedUnigramSampler(5, unique=True, seed=1)
    sampler.set_counts([heavy, 0, 0, 0, 0])
    sampled, true_expected, sampled_expected = sampler.sample([[0], [3]], 1, 5)
    assert sorted(sampled.numpy().tolist()) == [0, 1, 2, 3, 4]
    # Inclusion probabilities 1 - (1 - p)^num_tries after ~2 * heavy draws.
    for expected in (sampled_expected.numpy(), true_expected.numpy()):
        assert np.all(np.isfinite(expected)) and np.all(expected > 0) and np.all(expected <= 1)
    assert sampled_expected.numpy()[sampled.numpy() == 0] == pytest.approx(1.0)
    assert sampler.counts().numpy().tolist() == [heavy + 1, 0, 0, 1, 0]


def test_unique_sampling_of_the_functional_op_from_skewed_counts_returns():
    sampler = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(tc, 1, 6, True, 6, seed=9),
        input_signature=[tf.TensorSpec([None, 1], tf.int64)],
    )
    sampler(tf.zeros([1 << 22, 1], tf.int64))  # Class 0 now weighs 2^22 + 1 of 2^22 + 6.
    sampled, _, sampled_expected = sampler(tf.zeros([1, 1], tf.int64))
    assert sorted(sampled.numpy().tolist()) == list(range(6))
    assert np.all(sampled_expected.numpy() > 0.5)


def test_completed_unique_samples_follow_the_law_of_rejection_sampling():
    """With class 0 weighing ~10^6 and the rest 1, 2, 4, 8, rejection needs ~6.7e4
    draws to find a second class, past its budget of 1024 * 2: the kernel then draws
    the second class in proportion to the weights left and the number of draws from
    the geometric law, whose mean is total / 15."""
    counts = [10**6, 0, 1, 3, 7]
    total = sum(counts) + 5
    calls = 1500
    sampler = LearnedUnigramSampler(5, unique=True, seed=21)
    sampler.set_counts(counts)
    empty = tf.zeros([0, 1], tf.int64)
    draw = tf.function(lambda: sampler.sample(empty, 1, 2))
    seconds, tries = [], []
    for _ in range(calls):
        sampled, _, sampled_expected = draw()
        first, second = sampled.numpy().tolist()
        assert first == 0 or second == 0
        other = second if first == 0 else first
        seconds.append(other)
        p = (counts[other] + 1) / total
        expected = float(sampled_expected.numpy()[1 if first == 0 else 0])
        tries.append(math.log1p(-expected) / math.log1p(-p))
    observed = np.bincount(seconds, minlength=5)[1:]
    weights = np.array([1, 2, 4, 8]) / 15
    chi2 = float(((observed - calls * weights) ** 2 / (calls * weights)).sum())
    assert chi2 < 16.3, (observed, chi2)  # 3 dof, p = 0.001
    mean = total / 15
    # Geometric: sd = mean; 5 sd of the mean of `calls` draws (float32 rounding included).
    assert abs(np.mean(tries) - mean) < 5 * mean / math.sqrt(calls) + 0.02 * mean
    np.testing.assert_array_equal(sampler.counts().numpy(), counts)


# 6. fixed_unigram refuses weights TensorFlow would turn into NaN or a hang.


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        (dict(unigrams=[0.0, 0.0, 0.0, 0.0]), ValueError, ["`unigrams`", "sum is 0.0"]),
        (dict(unigrams=[1.0, float("nan"), 1.0, 1.0]), ValueError, ["`unigrams`", "nan", "1"]),
        (dict(unigrams=[1.0, 1.0, float("inf"), 1.0]), ValueError, ["inf", "index 2"]),
        (dict(unigrams=[1.0, 1e39, 1.0, 1.0]), ValueError, ["float32", "1e+39"]),
        (dict(unigrams=[1.0, -1.0, 1.0, 1.0]), ValueError, ["-1.0", "index 1"]),
        (dict(unigrams=[2.0, 3.0, 1.0, 1.0], distortion=1e6), ValueError, ["not finite"]),
        (dict(unigrams=[0.5, 0.25, 0.5, 0.1], distortion=1e6), ValueError, ["sum is 0.0"]),
        (dict(unigrams=[0.0, 1.0, 1.0, 1.0], distortion=-1.0), ValueError, ["index 0"]),
        (dict(unigrams=[1.0] * 4, distortion=float("nan")), ValueError, ["distortion=nan"]),
        (dict(unigrams=[1.0] * 4, distortion="2"), TypeError, ["distortion", "'2'"]),
        (dict(unigrams=[1.0] * 4, num_reserved_ids=1.0), TypeError, ["num_reserved_ids"]),
    ],
)
def test_fixed_unigram_rejects_bad_weights_when_built(options, error, words):
    with pytest.raises(error) as info:
        samplers.get("fixed_unigram", 4, **options)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_fixed_unigram_vocab_file_is_checked_when_built(tmp_path):
    vocab = tmp_path / "vocab.csv"
    vocab.write_text("a,0\nb,0\nc,0\n")
    with pytest.raises(ValueError, match=r"vocab_file.*sum is 0\.0"):
        samplers.get("fixed_unigram", 3, vocab_file=str(vocab))
    vocab.write_text("a,1\nb,2\n")
    with pytest.raises(ValueError, match=r"vocab_file.*3 values, got 2"):
        samplers.get("fixed_unigram", 3, vocab_file=str(vocab))
    vocab.write_text("a,1\nb,x\nc,1\n")
    with pytest.raises(ValueError, match=r"vocab_file.*line 2: 'b,x'"):
        samplers.get("fixed_unigram", 3, vocab_file=str(vocab))


def test_fixed_unigram_unique_sample_larger_than_its_support_is_refused():
    sampler = samplers.get("fixed_unigram", 5, unigrams=[4.0, 0.0, 1.0, 1e-30, 0.0], distortion=2)
    assert sampler.num_drawable == 2  # 1e-30 ** 2 is 0 in float32.
    with pytest.raises(ValueError, match=r"`num_sampled` must be <= the 2 classes.*num_sampled=3"):
        sampler.sample([[0]], 1, 3)
    sampled, _, _ = sampler.sample([[0]], 1, 2)
    assert sorted(sampled.numpy().tolist()) == [0, 2]


@pytest.mark.parametrize("name", ["uniform", "log_uniform"])
def test_builtin_unique_sample_larger_than_the_range_is_named(name):
    with pytest.raises(ValueError, match=r"`num_sampled` must be <= `range_max`.*num_sampled=11"):
        samplers.get(name, 10).sample([[0]], 1, 11)


# Found in the adversarial pass.


def test_fixed_unigram_unique_sample_that_rejection_cannot_finish_is_refused():
    sampler = samplers.get("fixed_unigram", 3, unigrams=[1e30, 1.0, 1.0], seed=1)
    with pytest.raises(ValueError, match=r"`num_sampled` must be small enough.*num_sampled=2"):
        sampler.sample([[0]], 1, 2)
    assert sampler.sample([[0]], 1, 1)[0].numpy().tolist() == [0]
    # Non-unique draws never reject.
    nonunique = samplers.get("fixed_unigram", 3, unigrams=[1e30, 1.0, 1.0], unique=False)
    assert nonunique.sample([[0]], 1, 3)[0].shape == (3,)
    # A skew that rejection gets through quickly is still sampled.
    sampled, _, sampled_expected = samplers.get(
        "fixed_unigram", 3, unigrams=[1e5, 1.0, 1.0], seed=4
    ).sample([[0]], 1, 3)
    assert sorted(sampled.numpy().tolist()) == [0, 1, 2]
    assert np.all(sampled_expected.numpy() > 0) and np.all(sampled_expected.numpy() <= 1)


def test_unique_draws_bound_matches_the_coupon_collector():
    from tf_sampling.samplers.builtin import unique_draws_bound

    bound = unique_draws_bound([1.0] * 4, 1.0)
    np.testing.assert_allclose(bound, [1, 1 + 4 / 3, 1 + 4 / 3 + 2, 1 + 4 / 3 + 2 + 4])
    assert np.isinf(unique_draws_bound([1.0, 0.0], 1.0)[1])


def test_fixed_unigram_non_numbers_are_named():
    with pytest.raises(TypeError, match=r"`unigrams` must be a sequence of numbers.*'x'"):
        samplers.get("fixed_unigram", 3, unigrams=["1", "x", "2"])


def test_numpy_bools_are_bools():
    sampled, _, _ = ts_ops.learned_unigram_candidate_sampler(
        [[0]], np.int64(1), np.int32(3), np.bool_(True), np.int64(10), seed=np.int64(4)
    )
    assert len(set(sampled.numpy().tolist())) == 3
    assert LearnedUnigramSampler(10, unique=np.bool_(False)).unique is False


def test_uint64_true_classes_past_int64_are_named_not_wrapped():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`true_classes` must be < 2\^63"):
        ts_ops.learned_unigram_candidate_sampler(
            tf.constant([[2**63]], tf.uint64), 1, 3, True, 10, seed=1
        )
    sampled, _, _ = ts_ops.learned_unigram_candidate_sampler(
        tf.constant([[7]], tf.uint64), 1, 3, True, 10, seed=1
    )
    assert sampled.shape == (3,)


def test_stream_offset_wraps_around_instead_of_overflowing():
    sampler = LearnedUnigramSampler(10, seed=1)
    sampler.offset.assign(INT64_MAX - 1)
    sampler.sample([[0]], 1, 3)
    # 2048 * 3 / 4 Philox samples per call, modulo 2^64.
    assert int(sampler.offset.numpy()) == INT64_MAX - 1 + 1536 - 2**64


def test_completion_of_skewed_unique_samples_is_the_same_in_sparse_storage():
    library = ts_ops.load_op_library()

    def run(storage):
        sample = tf.function(
            lambda tc: library.tf_sampling_learned_unigram_candidate_sampler(
                true_classes=tc,
                num_true=1,
                num_sampled=6,
                unique=True,
                range_max=6,
                seed=5,
                seed2=7,
                storage=storage,
            ),
            input_signature=[tf.TensorSpec([None, 1], tf.int64)],
        )
        sample(tf.zeros([1 << 22, 1], tf.int64))  # Past the rejection budget from now on.
        return [[t.numpy() for t in sample(tf.constant([[1]], tf.int64))] for _ in range(3)]

    dense, sparse = run("dense"), run("sparse")
    for step_dense, step_sparse in zip(dense, sparse, strict=True):
        assert sorted(step_dense[0].tolist()) == list(range(6))
        for a, b in zip(step_dense, step_sparse, strict=True):
            np.testing.assert_array_equal(a, b)
