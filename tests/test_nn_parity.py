"""tf_sampling.nn against TensorFlow's built-in v1 losses and a NumPy reference."""

import inspect

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import loss_harness, numpy_reference

NUM_CLASSES, DIM, BATCH, NUM_SAMPLED = 40, 6, 5, 12
FUNCTIONS = {"softmax": "sampled_softmax_loss", "nce": "nce_loss"}


def make_problem(num_true, unique, seed=0):
    """Random arrays plus a sampled triple that is guaranteed to contain accidental hits."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32)
    biases = rng.normal(size=(NUM_CLASSES,)).astype(np.float32)
    inputs = rng.normal(size=(BATCH, DIM)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=(BATCH, num_true)).astype(np.int64)
    if unique:
        others = np.setdiff1d(np.arange(NUM_CLASSES), labels[:2, 0])
        sampled = np.concatenate(
            [rng.choice(others, NUM_SAMPLED - 2, replace=False), labels[:2, 0]]
        )
    else:
        # With replacement: a repeated class, also equal to a label, exercises TF's
        # last-occurrence rule for accidental hits.
        sampled = rng.integers(0, NUM_CLASSES, size=NUM_SAMPLED)
        sampled[[3, 7]] = labels[0, 0]
    sampled = rng.permutation(sampled).astype(np.int64)
    true_expected = rng.uniform(0.05, 0.9, size=(BATCH, num_true)).astype(np.float32)
    sampled_expected = rng.uniform(0.05, 0.9, size=(NUM_SAMPLED,)).astype(np.float32)
    cotangent = rng.uniform(0.5, 1.5, size=(BATCH,))
    return weights, biases, labels, inputs, (sampled, true_expected, sampled_expected), cotangent


def assert_results_close(ours, ref, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(ours.loss, ref.loss, rtol=rtol, atol=atol)
    for a, b in zip(ours.grad_weights, ref.grad_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    for a, b in zip(ours.grad_biases, ref.grad_biases, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.grad_inputs, ref.grad_inputs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()))
def test_signature_matches_tensorflow_v1(name):
    ours = inspect.signature(getattr(tsn, name))
    theirs = inspect.signature(getattr(tf.compat.v1.nn, name))
    assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.default, p.kind) for p in theirs.parameters.values()
    ]


@pytest.mark.parametrize("mode", loss_harness.MODES)
@pytest.mark.parametrize("unique", [True, False], ids=["unique", "with_replacement"])
@pytest.mark.parametrize("remove_accidental_hits", [True, False], ids=["rah", "no_rah"])
@pytest.mark.parametrize("num_true", [1, 3])
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_matches_builtin_and_numpy(kind, num_true, remove_accidental_hits, unique, mode):
    w, b, labels, x, sv, ct = make_problem(num_true, unique)
    name = FUNCTIONS[kind]
    kwargs = dict(
        num_sampled=NUM_SAMPLED,
        num_classes=NUM_CLASSES,
        num_true=num_true,
        remove_accidental_hits=remove_accidental_hits,
    )
    ours = loss_harness.run(getattr(tsn, name), mode, [w], [b], labels, x, ct, sv, **kwargs)
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, name), mode, [w], [b], labels, x, ct, sv, **kwargs
    )
    assert_results_close(ours, builtin)

    loss, dw, db, dx = numpy_reference.sampled_loss(
        kind, w, b, labels, x, sv, remove_accidental_hits, ct
    )
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_weights[0], dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_biases[0], db, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-5)
    assert ours.weight_grad_types == ["IndexedSlices"]


@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()))
def test_rank1_labels_equal_rank2_labels(name):
    w, b, labels, x, sv, ct = make_problem(1, True)
    fn = getattr(tsn, name)
    flat = fn(w, b, labels[:, 0], x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv)
    column = fn(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv)
    int32 = fn(w, b, labels.astype(np.int32), x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv)
    np.testing.assert_array_equal(flat.numpy(), column.numpy())
    np.testing.assert_array_equal(int32.numpy(), column.numpy())


@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()))
def test_default_sampler_is_log_uniform_and_seeded(name):
    """Same seed: the same sampled classes and loss; the default sampler is TF's log-uniform."""
    w, b, labels, x, _, _ = make_problem(1, True)
    kwargs = {"seed": 7} if name == "sampled_softmax_loss" else {}

    def graph_loss(fn, seed_kwargs):
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(11)
            loss = fn(
                tf.constant(w),
                tf.constant(b),
                tf.constant(labels),
                tf.constant(x),
                NUM_SAMPLED,
                NUM_CLASSES,
                **seed_kwargs,
            )
            with tf.compat.v1.Session() as sess:
                return sess.run(loss)

    ours_a = graph_loss(getattr(tsn, name), kwargs)
    ours_b = graph_loss(getattr(tsn, name), kwargs)
    builtin = graph_loss(getattr(tf.compat.v1.nn, name), kwargs)
    np.testing.assert_array_equal(ours_a, ours_b)
    # Same graph-level and op-level seeds draw the same log-uniform candidates as TF.
    np.testing.assert_allclose(ours_a, builtin, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_true", [1, 3])
def test_default_sampler_accidental_hits_match_builtin_with_gradients(num_true):
    """The default (unique) sampler's hits are masked as TF masks them, values and gradients."""
    w, b, labels, x, _, cotangent = make_problem(num_true, True)

    def graph_run(fn):
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(5)
            tensors = [tf.constant(a) for a in (w, b, x)]
            loss = fn(
                tensors[0],
                tensors[1],
                tf.constant(labels),
                tensors[2],
                NUM_SAMPLED,
                NUM_CLASSES,
                num_true=num_true,
                seed=3,
            )
            grads = tf.gradients(loss, tensors, grad_ys=tf.constant(cotangent, tf.float32))
            grads = [tf.convert_to_tensor(g) for g in grads]
            # The same seeds give the sampler inside the loss the same draws.
            sampled = tf.random.log_uniform_candidate_sampler(
                tf.constant(labels), num_true, NUM_SAMPLED, True, NUM_CLASSES, seed=3
            )[0]
            with tf.compat.v1.Session() as sess:
                return sess.run([loss, *grads, sampled])

    ours = graph_run(tsn.sampled_softmax_loss)
    builtin = graph_run(tf.compat.v1.nn.sampled_softmax_loss)
    assert np.isin(labels, ours[-1]).any(), "the draw must contain accidental hits"
    np.testing.assert_array_equal(ours[-1], builtin[-1])
    for a, ref in zip(ours[:-1], builtin[:-1], strict=True):
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)


def test_different_seeds_sample_differently():
    w, b, labels, x, _, _ = make_problem(1, True)

    @tf.function
    def loss(seed):
        return tsn.sampled_softmax_loss(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, seed=seed)

    tf.random.set_seed(3)
    first = tf.function(
        lambda: tsn.sampled_softmax_loss(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, seed=1)
    )()
    tf.random.set_seed(3)
    again = tf.function(
        lambda: tsn.sampled_softmax_loss(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, seed=1)
    )()
    tf.random.set_seed(3)
    other = tf.function(
        lambda: tsn.sampled_softmax_loss(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, seed=2)
    )()
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.allclose(first.numpy(), other.numpy())


@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()))
def test_float64_matches_numpy_tightly(name):
    w, b, labels, x, sv, ct = make_problem(2, True)
    kind = "softmax" if name == "sampled_softmax_loss" else "nce"
    loss = getattr(tsn, name)(
        w.astype(np.float64),
        b.astype(np.float64),
        labels,
        x.astype(np.float64),
        NUM_SAMPLED,
        NUM_CLASSES,
        num_true=2,
        sampled_values=sv,
        remove_accidental_hits=True,
    )
    assert loss.dtype == tf.float64
    expected = numpy_reference.sampled_loss(kind, w, b, labels, x, sv, True, ct)[0]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("remove_accidental_hits", [True, False], ids=["rah", "no_rah"])
@pytest.mark.parametrize("num_true", [1, 2])
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_many_samples_match_builtin_and_numpy(kind, num_true, remove_accidental_hits):
    """Above 256 samples the core fuses the offset into the matmul and NCE uses a
    softplus form; both must give the same numbers."""
    rng = np.random.default_rng(5)
    num_classes, num_sampled, batch, dim = 1000, 300, 8, 5
    w = rng.normal(size=(num_classes, dim)).astype(np.float32)
    b = rng.normal(size=(num_classes,)).astype(np.float32)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=(batch, num_true)).astype(np.int64)
    others = np.setdiff1d(np.arange(num_classes), labels[:, 0])
    sampled = np.concatenate([rng.choice(others, num_sampled - 3, replace=False), labels[:3, 0]])
    sampled = rng.permutation(sampled)  # 3 of the 300 are accidental hits
    sv = (
        sampled.astype(np.int64),
        rng.uniform(0.05, 0.9, (batch, num_true)).astype(np.float32),
        rng.uniform(0.05, 0.9, num_sampled).astype(np.float32),
    )
    ct = rng.uniform(0.5, 1.5, size=batch)
    kwargs = dict(
        num_sampled=num_sampled,
        num_classes=num_classes,
        num_true=num_true,
        remove_accidental_hits=remove_accidental_hits,
    )
    ours = loss_harness.run(
        getattr(tsn, FUNCTIONS[kind]), "function", [w], [b], labels, x, ct, sv, **kwargs
    )
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, FUNCTIONS[kind]), "function", [w], [b], labels, x, ct, sv, **kwargs
    )
    assert_results_close(ours, builtin, rtol=1e-4, atol=1e-4)
    loss, dw, db, dx = numpy_reference.sampled_loss(
        kind, w, b, labels, x, sv, remove_accidental_hits, ct
    )
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours.grad_weights[0], dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_biases[0], db, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-5)
