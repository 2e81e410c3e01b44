"""Tests of LearnedUnigramSampler: the learned counts are state the user owns.

Needs the compiled op library (CI builds it first); never skips without it.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.ops as ts_ops
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler, count_tree_size

ROOT = pathlib.Path(__file__).resolve().parents[1]


def skewed_stream(rng, range_max, steps, batch, num_true=1):
    """Batches of Zipf-like true classes (class c has weight 1 / (c + 1)^1.2)."""
    weights = 1.0 / np.arange(1, range_max + 1) ** 1.2
    probs = weights / weights.sum()
    return [
        rng.choice(range_max, size=(batch, num_true), p=probs).astype(np.int64)
        for _ in range(steps)
    ]


def bincount(stream, range_max):
    return np.bincount(np.concatenate(stream).ravel(), minlength=range_max)


def test_shapes_dtypes_range_unique_and_counts():
    sampler = LearnedUnigramSampler(range_max=30, unique=True, seed=1)
    true_classes = np.array([[0, 4], [29, 4], [7, 7]], np.int64)
    sampled, true_expected, sampled_expected = sampler.sample(true_classes, 2, 12)
    assert sampled.dtype == tf.int64 and sampled.shape == (12,)
    assert true_expected.dtype == tf.float32 and true_expected.shape == (3, 2)
    assert sampled_expected.dtype == tf.float32 and sampled_expected.shape == (12,)
    assert len(set(sampled.numpy().tolist())) == 12
    assert 0 <= sampled.numpy().min() and sampled.numpy().max() < 30
    expected_counts = np.bincount(true_classes.ravel(), minlength=30)
    counts = sampler.counts()
    assert counts.dtype == tf.int64 and counts.shape == (30,)
    np.testing.assert_array_equal(counts.numpy(), expected_counts)
    assert sampler.tree.dtype == "int64" and not sampler.tree.trainable
    assert sampler.offset.dtype == "int64" and sampler.offset.shape == ()
    assert sampler.trainable_weights == [] and len(sampler.non_trainable_weights) == 2


@pytest.mark.parametrize("unique", [True, False])
def test_same_results_as_the_functional_op_and_tensorflow(unique):
    """Same seeds, same stream: the layer equals the kernel-state op and tf.random, step by step."""
    rng = np.random.default_rng(3)
    stream = skewed_stream(rng, 200, steps=5, batch=32, num_true=2)
    sampler = LearnedUnigramSampler(200, unique=unique, seed=21)
    signature = [tf.TensorSpec([None, 2], tf.int64)]
    functional = tf.function(
        lambda tc: ts_ops.learned_unigram_candidate_sampler(tc, 2, 40, unique, 200, seed=21),
        input_signature=signature,
    )
    builtin = tf.function(
        lambda tc: tf.random.learned_unigram_candidate_sampler(tc, 2, 40, unique, 200, seed=21),
        input_signature=signature,
    )
    for true_classes in stream:
        ours = sampler.sample(true_classes, 2, 40)
        for other in (functional(true_classes), builtin(true_classes)):
            for a, b in zip(ours, other, strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(sampler.counts().numpy(), bincount(stream, 200))


def test_expected_counts_follow_the_formula():
    sampler = LearnedUnigramSampler(40, unique=False, seed=2)
    rng = np.random.default_rng(4)
    stream = skewed_stream(rng, 40, steps=3, batch=50)
    for true_classes in stream:
        sampler.sample(true_classes, 1, 8)
    counts = bincount(stream, 40)
    probe = np.arange(40, dtype=np.int64).reshape(-1, 1)
    sampled, true_expected, sampled_expected = (t.numpy() for t in sampler.sample(probe, 1, 8))
    p = (1 + counts).astype(np.float32) / np.float32(40 + counts.sum())
    np.testing.assert_allclose(true_expected[:, 0], 8 * p, rtol=1e-6)
    np.testing.assert_allclose(sampled_expected, 8 * p[sampled], rtol=1e-6)


def test_same_seed_same_draws():
    def draws():
        sampler = LearnedUnigramSampler(1000, unique=False, seed=5)
        return [sampler.sample([[3], [3]], 1, 16)[0].numpy() for _ in range(3)]

    first, second = draws(), draws()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # the stream moves on


def test_state_survives_retracing():
    """A tf.function retraces for a new batch size; the counts stay (TF's built-in loses them)."""
    sampler = LearnedUnigramSampler(10, unique=False, seed=6)

    @tf.function
    def ours(tc):
        return sampler.sample(tc, 1, 4)[1]

    @tf.function
    def builtin(tc):
        return tf.random.learned_unigram_candidate_sampler(tc, 1, 4, False, 10, seed=6)[1]

    for fn in (ours, builtin):
        fn(tf.constant([[3]] * 6, tf.int64))
    # New shape: both functions retrace. Class 3 has weight 7 of 16 for us.
    np.testing.assert_allclose(ours(tf.constant([[3]], tf.int64)).numpy(), [[4 * 7 / 16]])
    np.testing.assert_allclose(builtin(tf.constant([[3]], tf.int64)).numpy(), [[4 / 10]])
    assert ours.experimental_get_tracing_count() == 2


def test_checkpoint_save_and_restore(tmp_path):
    rng = np.random.default_rng(7)
    stream = skewed_stream(rng, 100, steps=4, batch=64)
    sampler = LearnedUnigramSampler(100, unique=False, seed=8)
    for true_classes in stream:
        sampler.sample(true_classes, 1, 10)
    path = tf.train.Checkpoint(sampler=sampler).save(str(tmp_path / "ckpt"))

    restored = LearnedUnigramSampler(100, unique=False, seed=8)
    np.testing.assert_array_equal(restored.counts().numpy(), np.zeros(100))
    tf.train.Checkpoint(sampler=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.counts().numpy(), bincount(stream, 100))
    # And it samples from the restored distribution.
    _, true_expected, _ = restored.sample([[0]], 1, 10)
    counts = bincount(stream, 100)
    np.testing.assert_allclose(
        true_expected.numpy(), [[10 * (1 + counts[0]) / (100 + counts.sum())]], rtol=1e-6
    )
    # The random stream resumes where it was saved: both now draw the same.
    sampler.sample([[0]], 1, 10)
    for a, b in zip(sampler.sample([[5]], 1, 10), restored.sample([[5]], 1, 10), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@keras.saving.register_keras_serializable(package="tf_sampling_tests")
class SampledHead(keras.layers.Layer):
    """Test layer: embeds class ids and samples negatives for them while training."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.embedding = keras.layers.Embedding(num_classes, 4)
        self.sampler = LearnedUnigramSampler(num_classes, unique=True, seed=9)

    def build(self, input_shape):
        self.embedding.build((None,))

    def call(self, ids, training=False):
        vectors = self.embedding(ids[:, 0])
        if training:
            sampled, _, _ = self.sampler.sample(ids, 1, 3)
            negatives = self.embedding(sampled)
            vectors = vectors - 0.0 * tf.reduce_mean(negatives)
        return tf.reduce_sum(vectors, axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def make_model(num_classes):
    inputs = keras.Input((1,), dtype="int64")
    return keras.Model(inputs, SampledHead(num_classes)(inputs))


def test_model_fit_updates_counts_and_keras_file_keeps_them(tmp_path):
    num_classes = 25
    rng = np.random.default_rng(10)
    ids = np.concatenate(skewed_stream(rng, num_classes, steps=8, batch=16))
    model = make_model(num_classes)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(ids, np.zeros((len(ids), 1)), batch_size=16, epochs=2, shuffle=False, verbose=0)
    head = model.layers[-1]
    expected = 2 * np.bincount(ids.ravel(), minlength=num_classes)
    np.testing.assert_array_equal(head.sampler.counts().numpy(), expected)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.layers[-1].sampler.counts().numpy(), expected)
    assert loaded.layers[-1].sampler.get_config()["seed"] == 9


def test_mixed_precision_policy_keeps_int64_state():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = make_model(12)
    model.compile(optimizer="sgd", loss="mse")
    ids = np.array([[1], [1], [5], [11]] * 4, np.int64)
    model.fit(ids, np.zeros((16, 1)), batch_size=4, epochs=1, verbose=0)
    sampler = model.layers[-1].sampler
    assert sampler.tree.dtype == "int64"
    np.testing.assert_array_equal(sampler.counts().numpy(), np.bincount(ids.ravel(), minlength=12))
    _, true_expected, sampled_expected = sampler.sample([[1]], 1, 3)
    assert true_expected.dtype == tf.float32 and sampled_expected.dtype == tf.float32


def test_saved_model_restores_counts_in_a_fresh_process(tmp_path):
    """SavedModel export; a new process restores the learned distribution.

    TF's built-in sampler, saved the same way, comes back uniform there.
    """
    range_max, num_sampled = 50, 5
    rng = np.random.default_rng(11)
    stream = skewed_stream(rng, range_max, steps=5, batch=64)
    module = tf.Module()
    module.sampler = LearnedUnigramSampler(range_max, unique=False, seed=12)
    signature = [tf.TensorSpec([None, 1], tf.int64)]

    @tf.function(input_signature=signature)
    def sample(true_classes):
        return module.sampler.sample(true_classes, 1, num_sampled)

    @tf.function(input_signature=signature)
    def builtin(true_classes):
        return tf.random.learned_unigram_candidate_sampler(
            true_classes, 1, num_sampled, False, range_max, seed=12
        )

    module.sample, module.builtin = sample, builtin
    module.counts = tf.function(module.sampler.counts, input_signature=[])
    for true_classes in stream:
        module.sample(true_classes)
        module.builtin(true_classes)
    counts = bincount(stream, range_max)
    probe = [[0]]
    before_ours = module.sample(probe)[1].numpy()[0, 0]
    before_builtin = module.builtin(probe)[1].numpy()[0, 0]
    assert before_ours == pytest.approx(before_builtin)  # same distribution in this process
    counts[0] += 1
    export_dir = str(tmp_path / "saved_model")
    tf.saved_model.save(module, export_dir)

    code = textwrap.dedent(
        f"""
        import json, tensorflow as tf, tf_sampling.ops
        tf_sampling.ops.load_op_library()  # registers the custom ops before loading
        loaded = tf.saved_model.load({export_dir!r})
        counts = loaded.counts().numpy().tolist()
        ours = float(loaded.sample(tf.constant([[0]], tf.int64))[1].numpy()[0, 0])
        builtin = float(loaded.builtin(tf.constant([[0]], tf.int64))[1].numpy()[0, 0])
        print("RESULT " + json.dumps({{"counts": counts, "ours": ours, "builtin": builtin}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stderr[-3000:]
    restored = json.loads(lines[0][len("RESULT ") :])
    np.testing.assert_array_equal(restored["counts"], counts)
    learned = num_sampled * (1 + counts[0]) / (range_max + counts.sum())
    assert restored["ours"] == pytest.approx(learned, rel=1e-6)
    assert learned > 5 * num_sampled / range_max  # class 0 is frequent
    assert restored["builtin"] == pytest.approx(num_sampled / range_max, rel=1e-6)


def test_get_config_round_trip_and_set_counts():
    sampler = LearnedUnigramSampler(8, unique=False, seed=None, name="lu")
    config = sampler.get_config()
    assert {k: config[k] for k in ("range_max", "unique", "seed", "name")} == {
        "range_max": 8,
        "unique": False,
        "seed": None,
        "name": "lu",
    }
    clone = LearnedUnigramSampler.from_config(config)
    assert (clone.range_max, clone.unique, clone.seed) == (8, False, None)
    serialized = keras.saving.serialize_keras_object(sampler)
    assert isinstance(keras.saving.deserialize_keras_object(serialized), LearnedUnigramSampler)

    clone.set_counts([5, 0, 0, 1, 0, 0, 0, 2])
    np.testing.assert_array_equal(clone.counts().numpy(), [5, 0, 0, 1, 0, 0, 0, 2])
    _, true_expected, _ = clone.sample([[0], [3]], 1, 2)
    np.testing.assert_allclose(true_expected.numpy(), [[2 * 6 / 16], [2 * 2 / 16]], rtol=1e-6)


@pytest.mark.parametrize("range_max", [1, 2, 7, 8, 9, 63, 64, 65, 511, 512, 513, 4_097, 100_003])
def test_count_tree_layout_round_trips_and_matches_the_kernel(range_max):
    """The Python size of the tree equals the kernel's, and counts survive encoding."""
    library = ts_ops.load_op_library()
    counts = np.random.default_rng(range_max).integers(0, 50, size=range_max)
    tree = library.tf_sampling_learned_unigram_counts_to_tree(tf.constant(counts, tf.int64))
    assert tree.shape == (count_tree_size(range_max),)
    # Level 0 holds each block's inclusive prefix sums of the per-class counts.
    padded = np.zeros(-(-range_max // 8) * 8, np.int64)
    padded[:range_max] = counts
    np.testing.assert_array_equal(
        tree.numpy()[: padded.size], np.cumsum(padded.reshape(-1, 8), axis=1).ravel()
    )
    decoded = library.tf_sampling_learned_unigram_tree_to_counts(tree, range_max=range_max)
    np.testing.assert_array_equal(decoded.numpy(), counts)

    sampler = LearnedUnigramSampler(range_max, unique=False, seed=3)
    assert sampler.tree.shape == (count_tree_size(range_max),)
    sampler.set_counts(counts)
    np.testing.assert_array_equal(sampler.counts().numpy(), counts)
    # Sampling reads the tree: the expected count of class c is 4 * (1 + counts[c]) / total.
    labels = np.arange(range_max, dtype=np.int64)[:, None]
    _, true_expected, _ = sampler.sample(labels, 1, 4)
    total = range_max + counts.sum()
    np.testing.assert_allclose(true_expected.numpy()[:, 0], 4 * (1 + counts) / total, rtol=1e-5)


def test_tree_variable_of_the_wrong_size_is_refused():
    library = ts_ops.load_op_library()
    tree = tf.Variable(tf.zeros([100], tf.int64))
    offset = tf.Variable(tf.constant(0, tf.int64))
    with pytest.raises(
        (ValueError, tf.errors.InvalidArgumentError), match=r"count tree of range_max=100"
    ):
        library.tf_sampling_learned_unigram_sample_and_update(
            tree=tree.handle,
            offset=offset.handle,
            true_classes=tf.zeros([2, 1], tf.int64),
            num_true=1,
            num_sampled=2,
            unique=False,
            range_max=100,
        )


def test_concurrent_sampling_counts_every_class_once():
    sampler = LearnedUnigramSampler(1000, unique=True, seed=13)
    batches = [np.full((50, 1), i, np.int64) for i in range(16)]
    sample = tf.function(lambda tc: sampler.sample(tc, 1, 20))
    sample(tf.constant(batches[0]))  # trace once before the threads start
    threads = [
        threading.Thread(target=lambda b=b: [sample(tf.constant(b)) for _ in range(5)])
        for b in batches[1:]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = np.zeros(1000, np.int64)
    expected[:16] = [50] + [250] * 15
    np.testing.assert_array_equal(sampler.counts().numpy(), expected)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (dict(range_max=0), ValueError, r"range_max.*>= 1.*range_max=0"),
        (dict(range_max=3.0), TypeError, r"range_max.*3\.0"),
        (dict(unique="yes"), TypeError, r"unique.*bool.*'yes'"),
        (dict(seed="1"), TypeError, r"seed.*'1'"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        LearnedUnigramSampler(**{"range_max": 10, **kwargs})


def test_bad_sample_arguments_leave_counts_unchanged():
    sampler = LearnedUnigramSampler(10, unique=True, seed=14)
    with pytest.raises(ValueError, match=r"num_sampled=11.*range_max=10"):
        sampler.sample([[1]], 1, 11)
    with pytest.raises(ValueError, match=r"num_true=2 columns.*\(1, 1\)"):
        sampler.sample([[1]], 2, 3)
    with pytest.raises(TypeError, match=r"integer.*float32"):
        sampler.sample([[1.0]], 1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 10\).*\[1, 0\] = 12"):
        sampler.sample([[1], [12]], 1, 3)
    np.testing.assert_array_equal(sampler.counts().numpy(), np.zeros(10))


# ---------------------------------------------------------------------------
# No silent wrong number, hang or unclear error (issue 12; from test_samplers_hardening.py)
# ---------------------------------------------------------------------------

INT64_MAX = 2**63 - 1


def state(sampler):
    return sampler.tree.numpy().copy(), int(sampler.offset.numpy())


def assert_state_unchanged(sampler, before):
    np.testing.assert_array_equal(sampler.tree.numpy(), before[0])
    assert int(sampler.offset.numpy()) == before[1]


# The total weight range_max + sum(counts) never overflows int64.


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


# set_counts never truncates or misquotes.


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


# The count state is checked against range_max.


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


# Limits of range_max and num_sampled are named.


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


# Unique sampling from skewed counts finishes, with the law of rejection sampling.


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


def test_stream_offset_wraps_around_instead_of_overflowing():
    sampler = LearnedUnigramSampler(10, seed=1)
    sampler.offset.assign(INT64_MAX - 1)
    sampler.sample([[0]], 1, 3)
    # 2048 * 3 / 4 Philox samples per call, modulo 2^64.
    assert int(sampler.offset.numpy()) == INT64_MAX - 1 + 1536 - 2**64
