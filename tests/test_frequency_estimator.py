"""StreamingFrequencyEstimator: the paper's update rule step by step, ids, saving, XLA."""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sampling._core import frequency_estimation as fe
from tf_sampling.layers import StreamingFrequencyEstimator


def _paper_stream(batches, buckets_of, size, alpha, seed=0):
    """Yi et al.'s Algorithm, one arrival at a time in a shuffled order; returns (A, B) per step."""
    a = np.zeros(size, np.int64)
    b = np.zeros(size, np.float64)
    rng = random.Random(seed)
    states = []
    for t, batch in enumerate(batches, start=1):
        arrivals = list(batch)
        rng.shuffle(arrivals)
        for y in arrivals:
            for h in buckets_of(y):
                b[h] = (1 - alpha) * b[h] + alpha * (t - a[h])
                a[h] = t
        states.append((a.copy(), b.copy()))
    return states


def test_hand_made_stream_by_hand():
    # One hash, many buckets (ids 1, 2 apart), alpha = 0.5.
    est = StreamingFrequencyEstimator(
        num_buckets=1 << 16, num_hashes=1, learning_rate=0.5, bias_correction=False
    )
    hb = fe.hash_keys(tf.constant([1, 2], tf.int64), 1, 1 << 16).numpy()[0]
    assert hb[0] != hb[1]
    p1 = est(tf.constant([1], tf.int64), training=True).numpy()  # t=1: B1 = 0.5 * 1
    np.testing.assert_allclose(p1, [2.0])
    p2 = est(tf.constant([1, 1, 2], tf.int64), training=True).numpy()
    # t=2, id 1 twice: 0.5*(0.5*0.5 + 0.5*1) + 0.5*0 = 0.375; id 2: 0.5 * 2 = 1.
    np.testing.assert_allclose(p2, [1 / 0.375, 1 / 0.375, 1.0], rtol=1e-6)
    est(tf.constant([2], tf.int64), training=True)  # t=3, id 2: 0.5 * 1 + 0.5 * (3 - 2) = 1
    p4 = est(tf.constant([1], tf.int64), training=True).numpy()
    # t=4, id 1: 0.5 * 0.375 + 0.5 * (4 - 2) = 1.1875.
    np.testing.assert_allclose(p4, [1 / 1.1875], rtol=1e-6)
    assert int(est.step.numpy()) == 4
    np.testing.assert_allclose(est.probability(tf.constant([2], tf.int64)).numpy(), [1.0])
    # A never-seen id gets the documented value; inference does not update.
    assert est.probability(tf.constant([99], tf.int64)).numpy()[0] == fe.UNSEEN_PROBABILITY
    est(tf.constant([1], tf.int64))
    assert int(est.step.numpy()) == 4


@pytest.mark.parametrize("ids_kind", ["int64", "string"])
def test_matches_the_sequential_rule_step_by_step(ids_kind):
    # Few buckets and three hashes: collisions and duplicates both happen.
    rng = np.random.default_rng(3)
    batches = [rng.integers(0, 12, size=rng.integers(1, 9)).tolist() for _ in range(12)]
    if ids_kind == "string":
        batches = [[f"item-{y}" for y in batch] for batch in batches]
    num_buckets, num_hashes, alpha = 7, 3, 0.3
    est = StreamingFrequencyEstimator(
        num_buckets, num_hashes, alpha, id_dtype=ids_kind, bias_correction=False
    )

    def buckets_of(y):
        keys = fe.id_keys(tf.constant([y]))
        return fe.hash_keys(keys, num_hashes, num_buckets).numpy()[:, 0].tolist()

    states = _paper_stream(batches, buckets_of, num_buckets * num_hashes, alpha)
    for batch, (a, b) in zip(batches, states, strict=True):
        got = est(tf.constant(batch), training=True).numpy()
        np.testing.assert_array_equal(est.last_step.numpy(), a)
        np.testing.assert_allclose(est.gap.numpy(), b, rtol=1e-5)
        want = [1 / max(b[h] for h in buckets_of(y)) for y in batch]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # A different arrival order within each batch gives the same state.
    again = _paper_stream(batches, buckets_of, num_buckets * num_hashes, alpha, seed=7)
    np.testing.assert_allclose(again[-1][1], states[-1][1], rtol=1e-12)


def test_bias_correction_divides_by_the_weight_of_the_observations():
    # One hash, alpha = 0.5; id 1 at t=1 (gap 1), twice at t=3 (gaps 2, 0).
    est = StreamingFrequencyEstimator(1 << 16, 1, 0.5, bias_correction=True)
    np.testing.assert_allclose(est(tf.constant([1], tf.int64), training=True).numpy(), [1.0])
    est(tf.constant([5], tf.int64), training=True)
    got = est(tf.constant([1, 1], tf.int64), training=True).numpy()
    b = 0.25 * 0.5 + 0.5 * 0.5 * 2  # the paper's B after the three arrivals
    w = 1 - 0.5**3  # the weight the average gave to its three observations
    np.testing.assert_allclose(got, [w / b, w / b], rtol=1e-6)
    plain = StreamingFrequencyEstimator(1 << 16, 1, 0.5, bias_correction=False)
    for batch in ([1], [5], [1, 1]):
        p = plain(tf.constant(batch, tf.int64), training=True).numpy()
    np.testing.assert_allclose(p, [1 / b, 1 / b], rtol=1e-6)
    np.testing.assert_allclose(plain.gap.numpy(), est.gap.numpy())


def test_hashes_spread_and_differ():
    keys = tf.range(20000, dtype=tf.int64)
    buckets = fe.hash_keys(keys, 2, 1000).numpy()
    assert buckets[0].min() >= 0 and buckets[0].max() < 1000
    assert buckets[1].min() >= 1000 and buckets[1].max() < 2000
    counts = np.bincount(buckets[0], minlength=1000)
    assert counts.min() > 0 and counts.max() < 3 * 20  # near uniform (mean 20)
    assert np.mean(buckets[0] == buckets[1] - 1000) < 0.01  # independent-looking hashes


def test_xla_equals_eager():
    stream = [[1, 2, 2, 3], [2, 5, 9, 1], [1, 1, 1, 7]]
    eager = StreamingFrequencyEstimator(64, 2, 0.2)
    compiled = StreamingFrequencyEstimator(64, 2, 0.2)
    step = tf.function(lambda ids: compiled(ids, training=True), jit_compile=True)
    for batch in stream:
        want = eager(tf.constant(batch, tf.int64), training=True).numpy()
        np.testing.assert_allclose(step(tf.constant(batch, tf.int64)).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(compiled.gap.numpy(), eager.gap.numpy(), rtol=1e-6)


def test_state_round_trips_keras_file_and_checkpoint(tmp_path):
    ids = keras.Input(shape=(), dtype="int64")
    est = StreamingFrequencyEstimator(128, 2, 0.1)
    model = keras.Model(ids, est(ids))
    for batch in ([1, 2, 3, 3], [3, 4], [1, 9, 9, 9]):
        est(tf.constant(batch, tf.int64), training=True)
    probe = tf.constant([1, 2, 3, 4, 9, 77], tf.int64)
    want = model.predict(probe, verbose=0)
    path = tmp_path / "estimator.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(probe, verbose=0), want)
    restored = loaded.layers[-1]
    assert int(restored.step.numpy()) == 3
    np.testing.assert_array_equal(restored.last_step.numpy(), est.last_step.numpy())
    assert restored.get_config()["num_buckets"] == 128
    # SavedModel (Keras' export: the serving function reads the saved arrays)
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))  # kept: it owns the variables
    np.testing.assert_allclose(reloaded.serve(probe).numpy(), want)
    # tf.train.Checkpoint
    fresh = StreamingFrequencyEstimator(128, 2, 0.1)
    tf.train.Checkpoint(est=est).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(est=fresh).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_allclose(fresh.gap.numpy(), est.gap.numpy())


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"num_buckets": 0}, ValueError, "num_buckets"),
        ({"num_hashes": 1.5}, TypeError, "num_hashes"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"learning_rate": 1.5}, ValueError, "learning_rate"),
        ({"num_buckets": 1 << 30, "num_hashes": 2}, ValueError, "num_buckets"),
        ({"id_dtype": "float32"}, ValueError, "id_dtype"),
    ],
)
def test_bad_options_name_themselves(kwargs, error, text):
    with pytest.raises(error, match=text):
        StreamingFrequencyEstimator(**kwargs)


def test_wrong_id_dtype_changes_nothing():
    est = StreamingFrequencyEstimator(16, 1, 0.5)
    with pytest.raises(TypeError, match="ids"):
        est(tf.constant(["a"]), training=True)
    with pytest.raises(TypeError, match="ids"):
        est.update(tf.constant([1.5]))
    assert int(est.step.numpy()) == 0 and not est.gap.numpy().any()
