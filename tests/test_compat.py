"""Tests for the TF1 migration shim `tf_sampling.compat.v1` and `examples/tf1_migration.py`."""

from __future__ import annotations

import inspect
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling
from tf_sampling import nn as ts_nn
from tf_sampling.compat import v1 as compat_v1

REPO = pathlib.Path(__file__).resolve().parents[1]
tf1 = tf.compat.v1

NUM_CLASSES, DIM, BATCH, NUM_SHARDS = 31, 6, 8, 4


def test_shim_exposes_the_same_function_objects():
    assert compat_v1.nn.sampled_softmax_loss is ts_nn.sampled_softmax_loss
    assert compat_v1.nn.nce_loss is ts_nn.nce_loss
    assert compat_v1.contrib.nn.rank_sampled_softmax_loss is ts_nn.rank_sampled_softmax_loss
    # Reached lazily from the top-level package too, as TF1 code spells it.
    assert tf_sampling.compat.v1.contrib.nn.rank_sampled_softmax_loss is (
        ts_nn.rank_sampled_softmax_loss
    )


def test_shim_has_no_code_of_its_own():
    modules = [compat_v1, compat_v1.nn, compat_v1.contrib, compat_v1.contrib.nn]
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                assert not obj.__module__.startswith("tf_sampling.compat"), (module, name)
        own = [
            n
            for n, o in vars(module).items()
            if (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == module.__name__
        ]
        assert own == [], (module.__name__, own)


@pytest.mark.parametrize(
    "name,tf1_name", [("nce_loss", "nce_loss"), ("sampled_softmax_loss", "sampled_softmax_loss")]
)
def test_shim_signatures_are_tf1_signatures(name, tf1_name):
    ours = inspect.signature(getattr(compat_v1.nn, name))
    theirs = inspect.signature(getattr(tf1.nn, tf1_name))
    assert [(p.name, p.default) for p in ours.parameters.values()] == [
        (p.name, p.default) for p in theirs.parameters.values()
    ]


def test_contrib_signature():
    params = inspect.signature(compat_v1.contrib.nn.rank_sampled_softmax_loss).parameters
    assert list(params) == [
        "weights",
        "biases",
        "labels",
        "inputs",
        "num_sampled",
        "num_resampled",
        "num_classes",
        "num_true",
        "sampled_values",
        "resampling_temperature",
        "remove_accidental_hits",
        "partition_strategy",
        "name",
    ]
    # As in TF 1.x, only `name` has a default.
    assert [n for n, p in params.items() if p.default is not inspect.Parameter.empty] == ["name"]


def _tf115_rank_sampled_softmax(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_resampled,
    num_classes,
    num_true,
    sampled_values,
    temperature,
    remove_accidental_hits,
    partition_strategy,
):
    """TF 1.15's contrib algorithm written with TensorFlow's own v1 ops, as an oracle."""
    candidates, true_ec, sampled_ec = (tf.stop_gradient(v) for v in sampled_values)
    rows = tf1.nn.embedding_lookup(weights, candidates, partition_strategy=partition_strategy)
    bias = tf1.nn.embedding_lookup(biases, candidates, partition_strategy=partition_strategy)
    score = tf.reduce_logsumexp(tf.matmul(rows, inputs / temperature, transpose_b=True), 1)
    _, keep = tf.math.top_k(score + bias / temperature, k=num_resampled, sorted=False)
    kept = (tf.gather(candidates, keep), true_ec, tf.gather(sampled_ec, keep))
    return tf1.nn.sampled_softmax_loss(
        weights,
        biases,
        labels,
        inputs,
        num_resampled,
        num_classes,
        num_true=num_true,
        sampled_values=kept,
        remove_accidental_hits=remove_accidental_hits,
        partition_strategy=partition_strategy,
    )


@pytest.mark.parametrize("partition_strategy", ["mod", "div"])
def test_tf1_graph_program_through_the_shim_matches_tensorflow(partition_strategy):
    """A TF1 program (placeholders, Session, partitioned get_variable) gives the numbers of
    TensorFlow's own v1 losses for the same candidates, forward and gradient, and trains."""
    rng = np.random.default_rng(3)
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        partitioner = tf1.fixed_size_partitioner(NUM_SHARDS)
        weights = tf1.get_variable("softmax_w", [NUM_CLASSES, DIM], partitioner=partitioner)
        biases = tf1.get_variable(
            "softmax_b",
            [NUM_CLASSES],
            partitioner=partitioner,
            initializer=tf1.random_normal_initializer(),
        )
        inputs = tf1.placeholder(tf.float32, [None, DIM])
        labels = tf1.placeholder(tf.int64, [None, 2])
        temperature = tf1.placeholder(tf.float32, [])
        first_pass = tf1.nn.learned_unigram_candidate_sampler(
            labels, 2, 12, True, NUM_CLASSES, seed=1
        )
        # Evaluate the sampler once, then feed the same candidates to both sides.
        fixed = [
            tf1.placeholder(tf.int64, [12]),
            tf1.placeholder(tf.float32, [None, 2]),
            tf1.placeholder(tf.float32, [12]),
        ]
        common = dict(
            weights=weights,
            biases=biases,
            labels=labels,
            inputs=inputs,
            num_classes=NUM_CLASSES,
            num_true=2,
            partition_strategy=partition_strategy,
        )
        pairs = {
            "sampled": (
                compat_v1.nn.sampled_softmax_loss(num_sampled=12, sampled_values=fixed, **common),
                tf1.nn.sampled_softmax_loss(num_sampled=12, sampled_values=fixed, **common),
            ),
            "nce": (
                compat_v1.nn.nce_loss(num_sampled=12, sampled_values=fixed, **common),
                tf1.nn.nce_loss(num_sampled=12, sampled_values=fixed, **common),
            ),
            "rank": (
                compat_v1.contrib.nn.rank_sampled_softmax_loss(
                    num_sampled=12,
                    num_resampled=5,
                    sampled_values=fixed,
                    resampling_temperature=temperature,
                    remove_accidental_hits=True,
                    **common,
                ),
                _tf115_rank_sampled_softmax(
                    common["weights"],
                    biases,
                    labels,
                    inputs,
                    12,
                    5,
                    NUM_CLASSES,
                    2,
                    fixed,
                    temperature,
                    True,
                    partition_strategy,
                ),
            ),
        }
        variables = [*list(weights), *list(biases)]
        grads = {
            k: [tf1.gradients(tf.reduce_sum(v), variables + [inputs]) for v in pair]
            for k, pair in pairs.items()
        }
        grads = {
            k: [[tf.convert_to_tensor(g) for g in side] for side in pair]
            for k, pair in grads.items()
        }
        train_loss = tf.reduce_mean(
            compat_v1.contrib.nn.rank_sampled_softmax_loss(
                num_sampled=12,
                num_resampled=5,
                sampled_values=first_pass,
                resampling_temperature=temperature,
                remove_accidental_hits=True,
                **common,
            )
        )
        train_op = tf1.train.GradientDescentOptimizer(0.5).minimize(train_loss)
        init = tf1.global_variables_initializer()

    x = rng.normal(size=(BATCH, DIM)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=(BATCH, 2))
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        candidates = dict(zip(fixed, sess.run(first_pass, {labels: y}), strict=True))
        for t in (0.5, 2.0):
            feed = {inputs: x, labels: y, temperature: t, **candidates}
            out = sess.run({"loss": pairs, "grads": grads}, feed)
            for key in pairs:
                ours, theirs = out["loss"][key]
                np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=key)
                for g_ours, g_theirs in zip(*out["grads"][key], strict=True):
                    np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-5, atol=1e-5, err_msg=key)
        feed = {inputs: x, labels: y, temperature: 1.0}
        start = sess.run(pairs["sampled"][1], {**feed, **candidates}).mean()
        for _ in range(30):
            sess.run(train_op, feed)
        end = sess.run(pairs["sampled"][1], {**feed, **candidates}).mean()
    assert end < start


def _op_library_available() -> bool:
    try:
        from tf_sampling import ops

        ops.load_op_library()
    except Exception:  # noqa: BLE001 -- any failure to load means: not built here
        return False
    return True


def test_example_tf1_migration_runs():
    """The TF1-style example trains through the shim (tiny run) and improves recall@1."""
    # Its default first pass (sampled_values=None) needs this package's compiled op.
    flags = ["--tiny"] if _op_library_available() else ["--tiny", "--tf_sampler"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "tf1_migration.py"), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("loss=rank classes=200 shards=4")
    after = dict(item.split("=") for item in lines[2].split()[1:])
    assert float(after["recall@1"]) > 0.3, result.stdout
    assert lines[-1] == "OK"


def test_tf1_graph_with_tf_test_shaped_inputs_through_the_shim():
    """TF1 placeholders of unknown batch size, [batch, 1] true counts with num_true=2 and
    contrib's list-valued sampled_values: the shim gives TensorFlow's numbers and rejects
    labels of another batch size at run time."""
    rng = np.random.default_rng(4)
    w = rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32)
    b = rng.normal(size=(NUM_CLASSES,)).astype(np.float32)
    x = rng.normal(size=(BATCH, DIM)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=(BATCH, 2))
    sampled_values = ([3, 4, 5, 6, 7], [[0.5]] * BATCH, [0.5, 0.4, 0.3, 0.2, 0.1])
    with tf1.Graph().as_default():
        inputs = tf1.placeholder(tf.float32, [None, DIM])
        labels = tf1.placeholder(tf.int64, [None, None])
        common = dict(
            weights=w,
            biases=b,
            labels=labels,
            inputs=inputs,
            num_sampled=5,
            num_classes=NUM_CLASSES,
            num_true=2,
            sampled_values=sampled_values,
        )
        pairs = [
            (getattr(compat_v1.nn, n)(**common), getattr(tf1.nn, n)(**common))
            for n in ("sampled_softmax_loss", "nce_loss")
        ]
        with tf1.Session() as sess:
            for ours, theirs in sess.run(pairs, {inputs: x, labels: y}):
                np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
            with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
                sess.run(pairs[0][0], {inputs: x, labels: y[:1]})


# --------------------------------------------------------------------------------------------
# TF 1.15 contrib's sampled_sparse_softmax_loss (issue 22)
# --------------------------------------------------------------------------------------------


def test_sampled_sparse_softmax_loss_is_exported_with_tf115_signature():
    fn = compat_v1.contrib.nn.sampled_sparse_softmax_loss
    assert "sampled_sparse_softmax_loss" in compat_v1.contrib.nn.__all__
    assert tf_sampling.compat.v1.contrib.nn.sampled_sparse_softmax_loss is fn
    params = inspect.signature(fn).parameters
    # TF 1.15 tensorflow/contrib/nn/python/ops/sampling_ops.py, argument for argument.
    assert [(n, p.default) for n, p in params.items()] == [
        ("weights", inspect.Parameter.empty),
        ("biases", inspect.Parameter.empty),
        ("labels", inspect.Parameter.empty),
        ("inputs", inspect.Parameter.empty),
        ("num_sampled", inspect.Parameter.empty),
        ("num_classes", inspect.Parameter.empty),
        ("sampled_values", None),
        ("remove_accidental_hits", True),
        ("partition_strategy", "mod"),
        ("name", "sampled_sparse_softmax_loss"),
    ]


def _sparse_problem(batch=BATCH):
    rng = np.random.default_rng(9)
    w = rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32)
    b = rng.normal(size=NUM_CLASSES).astype(np.float32)
    x = rng.normal(size=(batch, DIM)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=(batch, 1)).astype(np.int64)
    # Two labels among the candidates: accidental hits.
    others = np.setdiff1d(np.arange(NUM_CLASSES), y[:, 0])
    candidates = np.concatenate([y[:2, 0], rng.choice(others, 7, replace=False)]).astype(np.int64)
    sampled_values = (
        candidates,
        rng.uniform(0.1, 0.9, (batch, 1)).astype(np.float32),
        rng.uniform(0.1, 0.9, len(candidates)).astype(np.float32),
    )
    return w, b, x, y, sampled_values, rng.uniform(0.5, 1.5, batch)


@pytest.mark.parametrize("mode", ["eager", "function", "graph"])
@pytest.mark.parametrize("hits", [True, False], ids=["rah", "no_rah"])
@pytest.mark.parametrize("shards", [1, 3])
def test_sampled_sparse_softmax_loss_numbers(shards, hits, mode):
    from tests import loss_harness, numpy_reference

    w, b, x, y, sv, ct = _sparse_problem()
    split = lambda t: np.array_split(t, shards)  # noqa: E731 -- "div" shards
    kwargs = dict(
        num_sampled=len(sv[0]),
        num_classes=NUM_CLASSES,
        remove_accidental_hits=hits,
        partition_strategy="div",
    )
    ours = loss_harness.run(
        compat_v1.contrib.nn.sampled_sparse_softmax_loss,
        mode,
        split(w),
        split(b),
        y,
        x,
        ct,
        sv,
        **kwargs,
    )
    # TF 1.15 computed the sparse softmax cross-entropy of [true, sampled] logits against
    # column 0: the sampled softmax loss with num_true=1.
    builtin = loss_harness.run(
        tf1.nn.sampled_softmax_loss, mode, split(w), split(b), y, x, ct, sv, **kwargs
    )
    np.testing.assert_allclose(ours.loss, builtin.loss, rtol=1e-5, atol=1e-6)
    for a, c in zip(
        ours.grad_weights + ours.grad_biases + [ours.grad_inputs],
        builtin.grad_weights + builtin.grad_biases + [builtin.grad_inputs],
        strict=True,
    ):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    loss, dw, db, dx = numpy_reference.sampled_loss("softmax", w, b, y, x, sv, hits, ct)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(ours.grad_weights), dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(ours.grad_biases), db, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-6)


def test_sampled_sparse_softmax_loss_batch_of_one_and_vector_labels():
    # TF 1.15 squeezed [1, 1] labels into a scalar and failed on a batch of one.
    w, b, x, y, sv, _ = _sparse_problem(batch=1)
    fn = compat_v1.contrib.nn.sampled_sparse_softmax_loss
    want = tf1.nn.sampled_softmax_loss(w, b, y, x, len(sv[0]), NUM_CLASSES, sampled_values=sv)
    for labels in (y, y[:, 0]):
        got = fn(w, b, labels, x, len(sv[0]), NUM_CLASSES, sampled_values=sv)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_sampled_sparse_softmax_loss_default_sampler_and_bad_labels():
    w, b, x, y, _, _ = _sparse_problem()
    fn = compat_v1.contrib.nn.sampled_sparse_softmax_loss

    def seeded(loss_fn):
        with tf1.Graph().as_default():
            tf1.set_random_seed(3)
            loss = loss_fn(w, b, y, x, 9, NUM_CLASSES)
            with tf1.Session() as sess:
                return sess.run(loss)

    # The default sampler draws what sampled_softmax_loss's draws: TF's log-uniform one.
    np.testing.assert_allclose(seeded(fn), seeded(ts_nn.sampled_softmax_loss), rtol=1e-6)
    with pytest.raises(ValueError, match=r"`labels` must have shape \[batch_size, num_true\]"):
        fn(w, b, np.zeros((BATCH, 2), np.int64), x, 9, NUM_CLASSES)
