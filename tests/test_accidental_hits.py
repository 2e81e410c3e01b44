"""Accidental hits in plain TF ops (tf_sampling._core.accidental_hits) against tf.nn.compute_accidental_hits."""

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling._core import accidental_hits


def _random_cases(count, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        num_true = int(rng.integers(1, 4))
        batch = int(rng.integers(1, 6))
        num_sampled = int(rng.integers(1, 12))
        # Few classes: repeated candidates, repeated true classes and hits are common.
        range_max = int(rng.integers(1, 8))
        true_classes = rng.integers(0, range_max, (batch, num_true))
        sampled = rng.integers(0, range_max, num_sampled)
        yield true_classes, sampled, num_true


def _dense_from_tf(true_classes, sampled, num_true):
    rows, ids, _ = tf.nn.compute_accidental_hits(true_classes, sampled, num_true=num_true)
    dense = np.zeros((true_classes.shape[0], sampled.shape[0]), bool)
    dense[rows.numpy(), ids.numpy()] = True
    return dense


def test_compute_accidental_hits_equals_tensorflow_outputs():
    for true_classes, sampled, num_true in _random_cases(300):
        want = tf.nn.compute_accidental_hits(true_classes, sampled, num_true=num_true)
        got = accidental_hits.compute_accidental_hits(true_classes, sampled, num_true)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_mask_equals_tensorflow_hits_eager_graph_and_xla():
    graph_fn = tf.function(accidental_hits.accidental_hit_mask)
    xla_fn = tf.function(accidental_hits.accidental_hit_mask, jit_compile=True)
    for true_classes, sampled, num_true in _random_cases(100, seed=1):
        want = _dense_from_tf(true_classes, sampled, num_true)
        got = accidental_hits.accidental_hit_mask(true_classes, sampled, num_true)
        np.testing.assert_array_equal(got.numpy(), want)
    # Compiling is slow: one shape per mode, many values.
    rng = np.random.default_rng(2)
    for fn in (graph_fn, xla_fn):
        for _ in range(20):
            true_classes = rng.integers(0, 6, (4, 2))
            sampled = rng.integers(0, 6, 9)
            want = _dense_from_tf(true_classes, sampled, 2)
            got = fn(tf.constant(true_classes), tf.constant(sampled), 2)
            np.testing.assert_array_equal(got.numpy(), want)


def test_class_sampled_twice_is_masked_at_its_last_position_only():
    true_classes = np.array([[3], [4], [3]])
    sampled = np.array([3, 5, 3, 4, 3, 4])
    mask = accidental_hits.accidental_hit_mask(true_classes, sampled, 1).numpy()
    np.testing.assert_array_equal(
        mask,
        [
            [False, False, False, False, True, False],
            [False, False, False, False, False, True],
            [False, False, False, False, True, False],
        ],
    )
    np.testing.assert_array_equal(mask, _dense_from_tf(true_classes, sampled, 1))


def test_repeated_true_class_is_listed_per_repetition_like_tensorflow():
    true_classes = np.array([[2, 2, 7]])
    sampled = np.array([7, 2, 9])
    rows, ids, weights = accidental_hits.compute_accidental_hits(true_classes, sampled, 3)
    np.testing.assert_array_equal(rows.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(ids.numpy(), [1, 1, 0])
    np.testing.assert_array_equal(weights.numpy(), np.full(3, np.finfo(np.float32).min))


@pytest.mark.parametrize("values", [[5], [1, 1, 1], [4, 2, 4, 0, 2, 9], list(range(10))[::-1]])
def test_last_occurrences_matches_numpy(values):
    values = np.array(values, np.int64)
    reversed_first = np.unique(values[::-1], return_index=True)[1]
    want = np.zeros(len(values), bool)
    want[len(values) - 1 - reversed_first] = True
    got = accidental_hits.last_occurrences(tf.constant(values)).numpy()
    np.testing.assert_array_equal(got, want)


def test_in_xla_context():
    seen = {}

    def probe(key):
        seen[key] = accidental_hits.in_xla_context()
        return tf.constant(0)

    tf.function(lambda: probe("xla"), jit_compile=True)()
    tf.function(lambda: probe("graph"))()
    probe("eager")
    assert seen == {"xla": True, "graph": False, "eager": False}
