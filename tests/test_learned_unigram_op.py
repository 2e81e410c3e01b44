"""Tests of tf_sampling.ops.learned_unigram_candidate_sampler (the C++ op).

These tests need the compiled library (``bash custom_ops/build.sh``; CI builds
it first): if it is missing they fail, they never skip.

The kernel of a stateful op keeps its counts per op instance. In eager mode
TensorFlow caches one kernel per distinct set of attributes, so a test that
needs fresh counts either uses attributes (seed, range_max) no other test uses,
or builds a new ``tf.function`` (whose graph gets its own kernels).
"""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.ops as ts_ops
from tests.test_samplers_compilable import _tf_message
from tf_sampling.ops import _loader
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler

ROOT = pathlib.Path(__file__).resolve().parents[1]


def raw_op():
    """The generated wrapper of the kernel-state op (exposes ``storage``)."""
    return ts_ops.load_op_library().tf_sampling_learned_unigram_candidate_sampler


def skewed_stream(rng, range_max, steps, batch, num_true, exponent=1.2):
    """Batches of Zipf-like true classes: class c has weight 1 / (c + 1)^exponent."""
    weights = 1.0 / np.arange(1, range_max + 1) ** exponent
    probs = weights / weights.sum()
    return [
        rng.choice(range_max, size=(batch, num_true), p=probs).astype(np.int64)
        for _ in range(steps)
    ]


def chi2_critical(dof: int, alpha_z: float) -> float:
    """Upper chi-square quantile by the Wilson-Hilferty approximation.

    Args:
      dof: degrees of freedom.
      alpha_z: standard-normal quantile of 1 - alpha (3.0902 for alpha=0.001).
    """
    k = float(dof)
    return k * (1.0 - 2.0 / (9.0 * k) + alpha_z * math.sqrt(2.0 / (9.0 * k))) ** 3


def test_import_does_not_load_library():
    code = textwrap.dedent(
        """
        import tf_sampling.ops, tf_sampling.samplers
        assert not tf_sampling.ops.is_loaded(), "import loaded the .so"
        tf_sampling.ops.learned_unigram_candidate_sampler([[1]], 1, 2, True, 10, seed=1)
        assert tf_sampling.ops.is_loaded()
        print("LAZY_OK")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert "LAZY_OK" in result.stdout, result.stderr[-3000:]


def test_library_is_built_for_running_tensorflow():
    path = _loader.library_path()
    assert path.is_file(), f"{path} missing: run `bash custom_ops/build.sh`"
    assert _loader.built_tf_version(path) == tf.version.VERSION
    library = ts_ops.load_op_library()
    assert hasattr(library, "tf_sampling_learned_unigram_candidate_sampler")


@pytest.fixture
def unloaded_loader(monkeypatch):
    """Makes the loader act as if nothing were loaded yet; restores it afterwards."""
    monkeypatch.setattr(_loader, "_library", None)
    yield monkeypatch


def test_missing_library_error_says_how_to_build(unloaded_loader, tmp_path):
    unloaded_loader.setattr(_loader, "_path_override", tmp_path / "_tf_sampling_ops.so")
    with pytest.raises(ts_ops.OpLibraryError, match="missing") as info:
        ts_ops.learned_unigram_candidate_sampler([[1]], 1, 2, True, 10)
    assert "bash custom_ops/build.sh" in str(info.value)
    assert "pip install --no-build-isolation ." in str(info.value)


def test_library_for_other_tensorflow_version_is_refused(unloaded_loader, tmp_path):
    fake = tmp_path / "_tf_sampling_ops.so"
    fake.write_bytes(b"\x7fELF...tf_sampling:built-against-tensorflow=2.3.0;...")
    unloaded_loader.setattr(_loader, "_path_override", fake)
    with pytest.raises(ts_ops.OpLibraryError, match=r"built against TensorFlow 2\.3\.0") as info:
        ts_ops.load_op_library()
    assert tf.version.VERSION in str(info.value)
    assert "bash custom_ops/build.sh" in str(info.value)


@pytest.mark.parametrize("unique", [True, False])
def test_shapes_dtypes_and_range(unique):
    true_classes = tf.constant([[0, 5], [9, 9], [3, 1]], tf.int64)
    sampled, true_expected, sampled_expected = ts_ops.learned_unigram_candidate_sampler(
        true_classes, num_true=2, num_sampled=7, unique=unique, range_max=10, seed=101
    )
    assert sampled.dtype == tf.int64 and sampled.shape == (7,)
    assert true_expected.dtype == tf.float32 and true_expected.shape == (3, 2)
    assert sampled_expected.dtype == tf.float32 and sampled_expected.shape == (7,)
    values = sampled.numpy()
    assert values.min() >= 0 and values.max() < 10
    if unique:
        assert len(set(values.tolist())) == 7


def test_static_shapes_in_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int64)])
    def fn(true_classes):
        return ts_ops.learned_unigram_candidate_sampler(true_classes, 3, 16, False, 100, seed=1)

    sampled, true_expected, sampled_expected = fn.get_concrete_function().structured_outputs
    assert sampled.shape.as_list() == [16]
    assert true_expected.shape.as_list() == [None, 3]
    assert sampled_expected.shape.as_list() == [16]


def test_unique_draws_all_classes_when_num_sampled_equals_range():
    sampled, _, sampled_expected = ts_ops.learned_unigram_candidate_sampler(
        [[2]], num_true=1, num_sampled=40, unique=True, range_max=40, seed=102
    )
    assert sorted(sampled.numpy().tolist()) == list(range(40))
    # Inclusion probability of every class, given the many tries, is near 1.
    assert np.all(sampled_expected.numpy() > 0.5) and np.all(sampled_expected.numpy() <= 1.0)


def test_bit_exact_with_tensorflow_builtin_on_a_learning_stream():
    """Same seeds and same stream: the same draws and expected counts as tf.random's op."""
    rng = np.random.default_rng(7)
    for unique in (True, False):
        stream = skewed_stream(rng, 300, steps=6, batch=32, num_true=2)
        for true_classes in stream:
            ours = ts_ops.learned_unigram_candidate_sampler(
                true_classes, 2, 64, unique, 300, seed=103
            )
            theirs = tf.random.learned_unigram_candidate_sampler(
                true_classes, 2, 64, unique, 300, seed=103
            )
            for a, b in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    "range_max, num_sampled",
    [(7, 5), (512, 300), (5_000, 64), (5_003, 3_000), (200_003, 64), (1 << 18, 2_000)],
)
def test_bit_exact_with_tensorflow_builtin_across_descent_paths(range_max, num_sampled):
    """Ranges and sample sizes that exercise every path of the kernel's count tree.

    One level (7 classes) or many; a last block per level that is full (512) or
    partial (the odd ranges); the top levels updated once per call while the lower
    ones are updated per class (from 5_000 classes on); draws in one interleaved group
    or several (num_sampled beyond 128). All must return TF's draws and counts.
    """
    rng = np.random.default_rng(range_max)
    signature = [tf.TensorSpec([None, 1], tf.int64)]
    for unique in (True, False):
        ours = tf.function(
            lambda tc, u=unique: ts_ops.learned_unigram_candidate_sampler(
                tc, 1, num_sampled, u, range_max, seed=11
            ),
            input_signature=signature,
        )
        theirs = tf.function(
            lambda tc, u=unique: tf.random.learned_unigram_candidate_sampler(
                tc, 1, num_sampled, u, range_max, seed=11
            ),
            input_signature=signature,
        )
        for _ in range(4):
            ids = (rng.zipf(1.3, size=(512, 1)) - 1) % range_max
            true_classes = tf.constant((ids * 2_654_435_761) % range_max, tf.int64)
            for a, b in zip(ours(true_classes), theirs(true_classes), strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_counts_are_learned_after_sampling_per_op_instance():
    """Call 1 sees a uniform distribution; call 2 sees call 1's true classes."""
    signature = [tf.TensorSpec([None, 2], tf.int64)]  # One trace, one op instance.
    sampler = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(tc, 2, 4, False, 10, seed=104),
        input_signature=signature,
    )
    first = np.array([[3, 3], [3, 7]], np.int64)
    _, true_expected, sampled_expected = sampler(tf.constant(first))
    np.testing.assert_allclose(true_expected.numpy(), np.full((2, 2), 4 / 10), rtol=1e-6)
    np.testing.assert_allclose(sampled_expected.numpy(), np.full(4, 4 / 10), rtol=1e-6)
    # Now class 3 has weight 1 + 3 = 4, class 7 weight 2, total 10 + 4.
    _, true_expected, _ = sampler(tf.constant([[3, 7]], np.int64))
    np.testing.assert_allclose(true_expected.numpy(), [[4 * 4 / 14, 4 * 2 / 14]], rtol=1e-6)
    # A second tf.function is another op instance: it starts uniform again.
    other = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(tc, 2, 4, False, 10, seed=104),
        input_signature=signature,
    )
    _, true_expected, _ = other(tf.constant([[3, 7]], np.int64))
    np.testing.assert_allclose(true_expected.numpy(), [[0.4, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("unique", [False, True])
def test_expected_counts_follow_the_formulas(unique):
    """Expected counts from NumPy, using the counts the stream put in the kernel."""
    range_max, num_sampled, num_true = 50, 45, 2
    rng = np.random.default_rng(11)
    stream = skewed_stream(rng, range_max, steps=5, batch=40, num_true=num_true)
    sampler = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(
            tc, num_true, num_sampled, unique, range_max, seed=105
        ),
        input_signature=[tf.TensorSpec([None, num_true], tf.int64)],
    )
    for true_classes in stream:
        sampler(tf.constant(true_classes))
    counts = np.bincount(np.concatenate(stream).ravel(), minlength=range_max)
    probe = np.array([[0, 1], [2, 49], [10, 0]], np.int64)
    sampled, true_expected, sampled_expected = (t.numpy() for t in sampler(tf.constant(probe)))
    p = (1 + counts).astype(np.float32) / np.float32(range_max + counts.sum())
    if not unique:
        np.testing.assert_allclose(true_expected, p[probe] * num_sampled, rtol=1e-6)
        np.testing.assert_allclose(sampled_expected, p[sampled] * num_sampled, rtol=1e-6)
        return
    # 45 distinct of 50 skewed classes needs rejections, so the expected count
    # is 1 - (1 - p)^n with one number of tries n >= num_sampled for all classes.
    # Infer n from the rarest sampled class (well conditioned: its count is far from 1).
    rarest = int(np.argmin(p[sampled]))
    n = round(float(np.log1p(-sampled_expected[rarest]) / np.log1p(-p[sampled[rarest]])))
    assert n > num_sampled
    np.testing.assert_allclose(true_expected, -np.expm1(n * np.log1p(-p[probe])), rtol=1e-4)
    np.testing.assert_allclose(sampled_expected, -np.expm1(n * np.log1p(-p[sampled])), rtol=1e-4)


def test_same_seed_same_draws_different_seed_different_draws():
    def first_draws(seed):
        fn = tf.function(
            lambda: ts_ops.learned_unigram_candidate_sampler([[1]], 1, 32, False, 1000, seed=seed)[
                0
            ]
        )
        return fn().numpy()

    np.testing.assert_array_equal(first_draws(106), first_draws(106))
    assert not np.array_equal(first_draws(106), first_draws(107))


def test_statistically_equivalent_to_tensorflow_builtin():
    """Goodness of fit of our sampling frequencies, and homogeneity with TF's.

    Both samplers learn the same skewed stream of true classes, with different
    seeds, so their draws are independent. Test 1 (goodness of fit): our
    sampled-class frequencies against the exact distribution the counts imply
    (NumPy). Test 2 (homogeneity): a 2 x K contingency chi-square of our
    frequencies against the built-in's. Bins with an expected count below 5
    are pooled. Each test rejects at alpha = 0.001, so a correct sampler fails
    with probability about 0.2% per seed; with the fixed seeds here the
    outcome is deterministic (and passes). As a power check, the same
    statistic against the *uniform* distribution must reject by far.
    """
    range_max, num_sampled, batch = 60, 1000, 128
    rng = np.random.default_rng(12)
    warmup = skewed_stream(rng, range_max, steps=10, batch=batch, num_true=1)
    measure = skewed_stream(rng, range_max, steps=20, batch=batch, num_true=1)
    ours = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(
            tc, 1, num_sampled, False, range_max, seed=108
        )[0]
    )
    theirs = tf.function(
        lambda tc: tf.random.learned_unigram_candidate_sampler(
            tc, 1, num_sampled, False, range_max, seed=109
        )[0]
    )
    for true_classes in warmup:
        ours(tf.constant(true_classes))
        theirs(tf.constant(true_classes))
    counts = np.bincount(np.concatenate(warmup).ravel(), minlength=range_max)
    observed_ours = np.zeros(range_max)
    observed_theirs = np.zeros(range_max)
    expected = np.zeros(range_max)
    for true_classes in measure:
        weights = 1.0 + counts
        expected += num_sampled * weights / weights.sum()
        observed_ours += np.bincount(ours(tf.constant(true_classes)).numpy(), minlength=range_max)
        observed_theirs += np.bincount(
            theirs(tf.constant(true_classes)).numpy(), minlength=range_max
        )
        counts += np.bincount(true_classes.ravel(), minlength=range_max)

    def pooled(*arrays, key):
        small = key < 5
        if not small.any():
            return list(arrays)
        return [np.append(a[~small], a[small].sum()) for a in arrays]

    obs, exp = pooled(observed_ours, expected, key=expected)
    gof = float(((obs - exp) ** 2 / exp).sum())
    assert gof < chi2_critical(len(obs) - 1, 3.0902), gof

    a, b = pooled(observed_ours, observed_theirs, key=expected / 2)
    total = a + b
    expect_a = total * a.sum() / total.sum()
    expect_b = total * b.sum() / total.sum()
    homogeneity = float(((a - expect_a) ** 2 / expect_a + (b - expect_b) ** 2 / expect_b).sum())
    assert homogeneity < chi2_critical(len(a) - 1, 3.0902), homogeneity

    uniform = np.full(range_max, observed_ours.sum() / range_max)
    against_uniform = float(((observed_ours - uniform) ** 2 / uniform).sum())
    assert against_uniform > 100 * chi2_critical(range_max - 1, 3.0902)


def test_sparse_storage_matches_dense_and_handles_huge_ranges():
    rng = np.random.default_rng(13)
    stream = skewed_stream(rng, 500, steps=4, batch=16, num_true=3)

    def run(range_max, storage, seed):
        fn = tf.function(
            lambda tc: raw_op()(
                true_classes=tc,
                num_true=3,
                num_sampled=50,
                unique=True,
                range_max=range_max,
                seed=seed,
                seed2=1,
                storage=storage,
            )
        )
        return [[t.numpy() for t in fn(tf.constant(tc))] for tc in stream]

    for step_dense, step_sparse in zip(
        run(500, "dense", 110), run(500, "sparse", 110), strict=True
    ):
        for a, b in zip(step_dense, step_sparse, strict=True):
            np.testing.assert_array_equal(a, b)
    # 2^40 classes (TF's own op stops below 2^31): no O(range_max) memory.
    huge = 1 << 40
    for sampled, true_expected, _ in run(huge, "auto", 111):
        assert sampled.min() >= 0 and sampled.max() < huge
        assert np.all(true_expected > 0)
    # The stream's classes are small ids; with 2^40 classes they dominate nothing.
    assert sampled.max() > 1 << 30


def test_graph_mode_session():
    graph = tf.Graph()
    with graph.as_default():
        true_classes = tf.compat.v1.placeholder(tf.int64, [None, 1])
        outputs = ts_ops.learned_unigram_candidate_sampler(true_classes, 1, 5, False, 20, seed=112)
        with tf.compat.v1.Session(graph=graph) as session:
            first = session.run(outputs, {true_classes: [[4]] * 50})
            second = session.run(outputs, {true_classes: [[4]]})
    np.testing.assert_allclose(first[1], np.full((50, 1), 5 / 20), rtol=1e-6)
    # Class 4 now has weight 51 of 70.
    np.testing.assert_allclose(second[1], [[5 * 51 / 70]], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            dict(num_sampled=11, unique=True, range_max=10),
            ValueError,
            r"num_sampled=11.*range_max=10",
        ),
        (dict(num_sampled=0), ValueError, r"num_sampled.*>= 1.*num_sampled=0"),
        (dict(range_max=0, unique=False), ValueError, r"range_max.*>= 1.*range_max=0"),
        (dict(num_true=0), ValueError, r"num_true.*>= 1.*num_true=0"),
        (dict(num_true=2), ValueError, r"num_true=2 columns.*\(2, 1\)"),
        (dict(num_sampled=2.5), TypeError, r"num_sampled.*2\.5"),
        (dict(range_max="10"), TypeError, r"range_max.*'10'"),
        (dict(unique=1), TypeError, r"unique.*bool.*1"),
        (dict(seed=1.5), TypeError, r"seed.*1\.5"),
        (dict(true_classes=[1, 2]), ValueError, r"matrix.*\(2,\)"),
        (dict(true_classes=[[1.0], [2.0]]), TypeError, r"integer.*float32"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, pattern):
    args = dict(
        true_classes=[[1], [2]], num_true=1, num_sampled=3, unique=True, range_max=10, seed=1
    )
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        ts_ops.learned_unigram_candidate_sampler(**args)


@pytest.mark.parametrize("bad_class", [10, -1])
def test_out_of_range_class_is_invalid_argument(bad_class):
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"\[0, 10\).*= {bad_class}"):
        ts_ops.learned_unigram_candidate_sampler([[1], [bad_class]], 1, 3, True, 10, seed=113)


def test_shape_function_rejects_bad_ranks_in_graphs():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
    def rank_one(tc):
        return raw_op()(true_classes=tc, num_true=1, num_sampled=2, unique=False, range_max=5)

    with pytest.raises(ValueError, match=r"matrix \[batch_size, num_true\], got shape \[\?\]"):
        rank_one.get_concrete_function()


# ---------------------------------------------------------------------------
# No silent wrong number, hang or unclear error (issue 12; from test_samplers_hardening.py)
# ---------------------------------------------------------------------------


INT64_MAX = 2**63 - 1


# The total weight range_max + sum(counts) never overflows int64.


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


def test_huge_range_of_the_functional_op_still_works():
    sampled, true_expected, _ = ts_ops.learned_unigram_candidate_sampler(
        [[INT64_MAX - 2]], 1, 3, True, INT64_MAX - 1, seed=5
    )
    assert len(set(sampled.numpy().tolist())) == 3
    assert np.all(sampled.numpy() < INT64_MAX - 1)
    assert true_expected.numpy()[0, 0] > 0


def test_unique_sampling_of_the_functional_op_from_skewed_counts_returns():
    sampler = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(tc, 1, 6, True, 6, seed=9),
        input_signature=[tf.TensorSpec([None, 1], tf.int64)],
    )
    sampler(tf.zeros([1 << 22, 1], tf.int64))  # Class 0 now weighs 2^22 + 1 of 2^22 + 6.
    sampled, _, sampled_expected = sampler(tf.zeros([1, 1], tf.int64))
    assert sorted(sampled.numpy().tolist()) == list(range(6))
    assert np.all(sampled_expected.numpy() > 0.5)


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


# ---------------------------------------------------------------------------
# The op speaks TensorFlow's words for out-of-range true classes (issue 22; from test_samplers_compilable_hardening.py)
# ---------------------------------------------------------------------------


# The C++ op speaks TensorFlow's words too.


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
