"""The Keras face of two-tower retrieval: loss layer, memory, sampler, evaluation, saving, replicas."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import ROOT
from tf_sampling import nn
from tf_sampling.layers import (
    CandidateMemory,
    CorpusNegativeSampler,
    InBatchSoftmaxRetrieval,
    StreamingFrequencyEstimator,
    retrieval_top_k_accuracy,
)

D = 4


def _batch(seed, n=6, users=4, items=5):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, D)).astype(np.float32),
        rng.normal(size=(n, D)).astype(np.float32),
        rng.integers(0, items, n),
        rng.integers(0, users, n),
    )


def test_layer_equals_the_functional_loss_with_its_estimator():
    layer = InBatchSoftmaxRetrieval(
        logq_correction=True, mask_same_query=True, estimator_buckets=64, temperature=0.5
    )
    twin = StreamingFrequencyEstimator(64, 2, 0.01)
    for seed in range(3):
        q, c, ids, users = _batch(seed)
        got = layer(q, c, candidate_ids=ids, query_ids=users, training=True).numpy()
        p = twin(tf.constant(ids, tf.int64), training=True)
        want = nn.in_batch_softmax_loss(
            q, c, candidate_ids=ids, query_ids=users, candidate_sampling_probability=p,
            temperature=0.5,
        ).numpy()  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert float(layer.losses[-1]) == pytest.approx(want.sum(), rel=1e-6)
    # Inference reads the estimator without updating it.
    layer(q, c, candidate_ids=ids, query_ids=users)
    assert int(layer.estimator.step.numpy()) == 3


def test_memory_keeps_the_last_capacity_rows():
    memory = CandidateMemory(capacity=5, embedding_dim=2)
    rows = np.arange(24, dtype=np.float32).reshape(12, 2)
    ids = np.arange(100, 112)
    memory.write(rows[:3], ids[:3])
    _, got_ids, _, valid = memory.read()
    assert valid.numpy().sum() == 3 and set(got_ids.numpy()[valid.numpy()]) == {100, 101, 102}
    memory.write(rows[3:7], ids[3:7], probability=np.full(4, 0.5))
    memory.write(rows[7:12], ids[7:12])  # longer than what is left: wraps around
    emb, got_ids, prob, valid = memory.read()
    assert valid.numpy().all()
    order = np.argsort(got_ids.numpy())
    np.testing.assert_array_equal(got_ids.numpy()[order], ids[7:12])
    np.testing.assert_array_equal(emb.numpy()[order], rows[7:12])
    np.testing.assert_array_equal(prob.numpy(), np.ones(5))
    memory.write(rows, ids)  # a batch longer than the memory: its last 5 rows
    _, got_ids, _, _ = memory.read()
    assert sorted(got_ids.numpy()) == list(ids[-5:])


def test_memory_rows_are_negatives_without_gradient():
    layer = InBatchSoftmaxRetrieval(memory_size=4, embedding_dim=D)
    q0, c0, ids0, _ = _batch(0, n=3)
    layer(q0, c0, candidate_ids=ids0, training=True)
    q1, c1, ids1, _ = _batch(1, n=3)
    q1, c1 = tf.constant(q1), tf.constant(c1)
    with tf.GradientTape() as tape:
        tape.watch([q1, c1])
        got = layer(q1, c1, candidate_ids=ids1, training=True)
    grads = tape.gradient(got, [q1, c1])
    extra = np.concatenate([c0, np.zeros([1, D], np.float32)])  # the unfilled 4th row
    with tf.GradientTape() as tape:
        tape.watch([q1, c1])
        want = nn.in_batch_softmax_loss(
            q1, c1, candidate_ids=ids1, extra_negative_embeddings=extra,
            extra_negative_ids=np.concatenate([ids0, [0]]),
            extra_negative_mask=[True, True, True, False],
        )  # fmt: skip
    want_grads = tape.gradient(want, [q1, c1])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    for g, w in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    # Rows 0..2 now hold this batch; row 3 still the first batch's first row.
    assert int(layer.memory.filled.numpy()) == 4


def test_sampler_probabilities_and_draws():
    uniform = CorpusNegativeSampler(corpus_size=10, num_negatives=4, seed=1)
    idx, p = uniform()
    assert idx.dtype == tf.int64 and idx.shape == (4,)
    np.testing.assert_allclose(p.numpy(), np.full(4, 0.4))
    counts = np.array([0.0, 1.0, 3.0, 6.0])
    freq = CorpusNegativeSampler(corpus_size=4, num_negatives=4000, counts=counts, seed=2)
    idx, p = freq()
    idx = idx.numpy()
    assert (idx != 0).all()
    np.testing.assert_allclose(p.numpy(), 4000 * counts[idx] / counts.sum(), rtol=1e-5)
    share = np.bincount(idx, minlength=4) / 4000
    np.testing.assert_allclose(share, counts / counts.sum(), atol=0.03)
    again = CorpusNegativeSampler(corpus_size=4, num_negatives=4000, counts=counts, seed=2)
    np.testing.assert_array_equal(again()[0].numpy(), idx)
    with pytest.raises(ValueError, match="counts"):
        CorpusNegativeSampler(corpus_size=3, num_negatives=2, counts=[1.0, -1.0, 2.0])


def _two_tower(num_users=12, num_items=15, **layer_kwargs):
    user = keras.Input(shape=(), dtype="int64", name="user")
    item = keras.Input(shape=(), dtype="int64", name="item")
    q = keras.layers.Embedding(num_users, D, name="user_tower")(user)
    c = keras.layers.Embedding(num_items, D, name="item_tower")(item)
    loss = InBatchSoftmaxRetrieval(name="retrieval", **layer_kwargs)(
        q, c, candidate_ids=item, query_ids=user
    )
    return keras.Model({"user": user, "item": item}, loss)


def test_functional_two_tower_fits_saves_and_reloads_its_state(tmp_path):
    keras.utils.set_random_seed(0)
    model = _two_tower(
        logq_correction=True, estimator_buckets=64, memory_size=8, embedding_dim=D,
        mask_same_query=True,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    rng = np.random.default_rng(0)
    x = {"user": rng.integers(0, 12, 48), "item": rng.integers(0, 15, 48)}
    before = model.get_layer("item_tower").get_weights()[0].copy()
    history = model.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(before, model.get_layer("item_tower").get_weights()[0])
    layer = model.get_layer("retrieval")
    assert int(layer.estimator.step.numpy()) == 6 and int(layer.memory.filled.numpy()) == 8
    path = tmp_path / "two_tower.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    again = loaded.get_layer("retrieval")
    assert again.get_config() == layer.get_config()
    for a, b in zip(layer.weights, again.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))
    batch = {k: v[:8] for k, v in x.items()}
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0))


class MixedNegativesModel(keras.Model):
    """A subclassed two-tower model with mixed negatives drawn from the corpus."""

    def __init__(self, num_users=12, num_items=15):
        super().__init__()
        self.user_tower = keras.layers.Embedding(num_users, D)
        self.item_tower = keras.layers.Embedding(num_items, D)
        self.sampler = CorpusNegativeSampler(num_items, num_negatives=5, seed=3)
        self.retrieval = InBatchSoftmaxRetrieval(logq_correction=True, estimator_buckets=64)

    def call(self, inputs, training=None):
        negatives, expected = self.sampler()
        return self.retrieval(
            self.user_tower(inputs["user"]),
            self.item_tower(inputs["item"]),
            candidate_ids=inputs["item"],
            extra_negative_embeddings=self.item_tower(negatives),
            extra_negative_ids=negatives,
            extra_negative_sampling_probability=expected,
            training=training,
        )


def test_subclassed_model_with_mixed_negatives_fits():
    keras.utils.set_random_seed(1)
    model = MixedNegativesModel()
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    rng = np.random.default_rng(1)
    x = {"user": rng.integers(0, 12, 32), "item": rng.integers(0, 15, 32)}
    history = model.fit(x, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][1] < history.history["loss"][0]
    assert int(model.retrieval.estimator.step.numpy()) == 8


def _brute_force(q, table, positives, ks, ids, exclude):
    scores = q @ table.T
    out = {}
    for k in ks:
        hits = 0
        for i in range(len(q)):
            order = np.argsort(-scores[i], kind="stable")
            ranked = [ids[r] for r in order if exclude is None or ids[r] not in exclude[i]]
            hits += positives[i] in ranked[:k]
        out[k] = hits / len(q)
    return out


@pytest.mark.parametrize("with_exclusion", [False, True])
def test_top_k_accuracy_equals_brute_force(with_exclusion):
    rng = np.random.default_rng(5)
    q = rng.normal(size=(40, 3)).astype(np.float32)
    table = rng.normal(size=(30, 3)).astype(np.float32)
    ids = np.concatenate([np.arange(28), [3, 7]])  # two ids own two rows each
    table[28], table[29] = table[3], table[7]
    positives = rng.integers(0, 28, 40)
    exclude = None
    if with_exclusion:
        exclude = [list(rng.choice(28, size=rng.integers(0, 6), replace=False)) for _ in range(40)]
        exclude = [[e for e in row if e != p] for row, p in zip(exclude, positives, strict=True)]
    got = retrieval_top_k_accuracy(
        q, table, positives, ks=[1, 3, 10], candidate_ids=ids, exclude_ids=exclude, batch_size=16
    )
    want = _brute_force(q, table, positives, [1, 3, 10], ids, exclude)
    assert got == pytest.approx(want)
    assert 0 < got[10] < 1
    with pytest.raises(ValueError, match="ks"):
        retrieval_top_k_accuracy(q, table, positives, ks=[31])


def test_bad_layer_options_and_missing_ids():
    with pytest.raises(ValueError, match="embedding_dim"):
        InBatchSoftmaxRetrieval(memory_size=4)
    with pytest.raises(ValueError, match="reduction"):
        InBatchSoftmaxRetrieval(reduction="none")
    with pytest.raises(TypeError, match="mask_same_query"):
        InBatchSoftmaxRetrieval(mask_same_query=1)
    with pytest.raises(ValueError, match="temperature"):
        InBatchSoftmaxRetrieval(temperature=-1.0)
    q, c, ids, _ = _batch(0)
    with pytest.raises(ValueError, match="candidate_ids"):
        InBatchSoftmaxRetrieval()(q, c)
    with pytest.raises(ValueError, match="query_ids"):
        InBatchSoftmaxRetrieval(mask_same_query=True)(q, c, candidate_ids=ids)


def test_two_replicas_with_global_negatives_equal_one_device():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "retrieval_mirrored_check.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["estimator_gap_diff"] < 1e-6 and out["estimator_steps"] == [2, 2]
    assert out["estimator_replicas_agree"]
    assert out["loss_diff"] < 1e-5 and out["grad_diff"] < 1e-5
    assert out["memory_diff"] < 1e-6 and out["memory_filled"] == 6
    # The check is sensitive: one replica's half alone gives other losses.
    assert out["local_only_loss_diff"] > 1e-2


def test_two_replicas_with_known_positives_equal_one_device_and_the_functional_loss():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "retrieval_mirrored_known_check.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("loss_diff", "grad_diff", "functional_loss_diff", "functional_grad_diff"):
        assert out[key] < 1e-5, (key, out)
    assert out["weights_diff"] < 1e-5 and out["functional_weights_diff"] < 1e-5
    assert out["memory_diff"] < 1e-6 and out["memory_filled"] == 6
    assert out["ragged_loss_diff"] < 1e-5
    # Sensitive: the entries only another replica's or the memory's columns hold matter,
    # training moved the weights, and some rows are all padding.
    assert out["cross_known_effect"] > 1e-2 and out["memory_known_effect"] > 1e-2
    assert out["weights_moved"] > 1e-2 and out["padded_rows"] == 2


def test_fit_compiles_with_xla():
    keras.utils.set_random_seed(2)
    model = _two_tower(
        logq_correction=True, estimator_buckets=64, memory_size=8, embedding_dim=D,
        mask_same_query=True,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adagrad(0.1), jit_compile=True)
    rng = np.random.default_rng(2)
    x = {"user": rng.integers(0, 12, 32), "item": rng.integers(0, 15, 32)}
    history = model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.get_layer("retrieval").estimator.step.numpy()) == 4
