"""The split softmax cross-entropy against TensorFlow's kernel on the concatenated logits."""

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling._core.split_softmax import split_softmax_cross_entropy

FLOAT32_MIN = float(tf.float32.min)


def reference(true_logits, sampled_logits):
    """TF's path: concatenated logits, dense targets 1/num_true, the fused kernel."""
    num_true = true_logits.shape[1]
    logits = tf.concat([true_logits, sampled_logits], 1)
    targets = tf.concat(
        [
            tf.fill(tf.shape(true_logits), tf.constant(1.0 / num_true, logits.dtype)),
            tf.zeros_like(sampled_logits),
        ],
        1,
    )
    return tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)


def loss_and_grads(fn, true_logits, sampled_logits, upstream):
    true_logits, sampled_logits = tf.constant(true_logits), tf.constant(sampled_logits)
    with tf.GradientTape() as tape:
        tape.watch([true_logits, sampled_logits])
        losses = fn(true_logits, sampled_logits)
        weighted = tf.reduce_sum(losses * upstream)
    return [
        losses.numpy(),
        *(g.numpy() for g in tape.gradient(weighted, [true_logits, sampled_logits])),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_true", [1, 3])
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_matches_tensorflow_kernel_with_masked_and_large_logits(dtype, num_true, scale):
    rng = np.random.default_rng(num_true)
    true_logits = (scale * rng.normal(size=(6, num_true))).astype(dtype)
    sampled_logits = (scale * rng.normal(size=(6, 9))).astype(dtype)
    sampled_logits[0, 2] = sampled_logits[3, 0] = FLOAT32_MIN  # accidental hits
    true_logits[1, 0] = sampled_logits[1].max() + 1  # the true logit is the row maximum
    upstream = tf.constant(rng.uniform(0.5, 1.5, size=6).astype(dtype))
    ours = loss_and_grads(split_softmax_cross_entropy, true_logits, sampled_logits, upstream)
    ref = loss_and_grads(reference, true_logits, sampled_logits, upstream)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(ours, ref, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * scale)
    # Masked logits get exactly no gradient.
    assert ours[2][0, 2] == 0 and ours[2][3, 0] == 0


def test_works_in_a_tf1_graph():
    with tf.Graph().as_default():
        true_logits = tf.compat.v1.placeholder(tf.float32, [None, 2])
        sampled_logits = tf.compat.v1.placeholder(tf.float32, [None, 5])
        losses = split_softmax_cross_entropy(true_logits, sampled_logits)
        grads = tf.gradients(losses, [true_logits, sampled_logits])
        feed = {true_logits: np.ones((3, 2)), sampled_logits: np.zeros((3, 5))}
        with tf.compat.v1.Session() as sess:
            values, grad_true, grad_sampled = sess.run([losses, *grads], feed)
    # logsumexp of (1, 1, 0 x5) minus the mean true logit 1.
    np.testing.assert_allclose(values, np.log(2 * np.e + 5) - 1, rtol=1e-6)
    np.testing.assert_allclose(grad_true, np.e / (2 * np.e + 5) - 0.5, rtol=1e-5)
    np.testing.assert_allclose(grad_sampled, 1 / (2 * np.e + 5), rtol=1e-5)


def _float64_reference(true_logits, sampled_logits):
    """Loss and gradient (upstream 1) from the formula, in float64."""
    z = np.concatenate([true_logits, sampled_logits], 1).astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):  # a logit 2 * max below the max: exp gives 0 anyway
        shifted = z - m
    num_true = true_logits.shape[1]
    target = np.zeros_like(z)
    target[:, :num_true] = 1.0 / num_true
    # logsumexp(z) - mean(true z), both relative to the max, so nothing overflows.
    loss = np.log(np.exp(shifted).sum(axis=1)) - shifted[:, :num_true].mean(axis=1)
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return loss, softmax - target


@pytest.mark.parametrize("num_true", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_finite_true_logits_do_not_overflow_their_mean(num_true, dtype):
    """Item 7 of issue 12: true logits near the dtype's max summed to inf (loss -inf)."""
    big = 2.25e38 if dtype == np.float32 else 1.2e308
    true_logits = np.full((2, num_true), big, dtype)
    true_logits[1, 0] = big * 0.999  # one slightly smaller: its softmax share is ~0
    sampled_logits = np.array([[0.0, 1.0, -big], [big * 0.5, 3.0, 2.0]], dtype)
    upstream = tf.constant(np.ones(2, dtype))
    losses, grad_true, grad_sampled = loss_and_grads(
        split_softmax_cross_entropy, true_logits, sampled_logits, upstream
    )
    expected, expected_grad = _float64_reference(true_logits, sampled_logits)
    assert np.all(np.isfinite(losses)), losses
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    np.testing.assert_allclose(grad_true, expected_grad[:, :num_true], atol=1e-6)
    np.testing.assert_allclose(grad_sampled, expected_grad[:, num_true:], atol=1e-6)
