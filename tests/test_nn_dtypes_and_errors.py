"""Mixed precision, sparse gradients, and clear errors for bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import numpy_reference
from tests.test_nn_parity import NUM_CLASSES, NUM_SAMPLED, make_problem

LOSSES = [tsn.sampled_softmax_loss, tsn.nce_loss]
KIND = {tsn.sampled_softmax_loss: "softmax", tsn.nce_loss: "nce"}


@pytest.mark.parametrize("weights_dtype", ["float32", "same"])
@pytest.mark.parametrize("inputs_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("fn", LOSSES)
def test_half_precision_inputs_give_float32_accurate_loss(fn, inputs_dtype, weights_dtype):
    w, b, labels, x, sv, ct = make_problem(2, True)
    x_half = tf.cast(x, inputs_dtype)
    w_used = w if weights_dtype == "float32" else tf.cast(w, inputs_dtype)
    b_used = b if weights_dtype == "float32" else tf.cast(b, inputs_dtype)
    w_var = tf.Variable(w_used)
    with tf.GradientTape() as tape:
        tape.watch(x_half)
        loss = fn(
            w_var,
            b_used,
            labels,
            x_half,
            NUM_SAMPLED,
            NUM_CLASSES,
            num_true=2,
            sampled_values=sv,
            remove_accidental_hits=True,
        )
        total = tf.reduce_sum(loss)
    grad_w, grad_x = tape.gradient(total, [w_var, x_half])
    assert loss.dtype == tf.float32
    assert isinstance(grad_w, tf.IndexedSlices) and grad_w.dtype == w_var.dtype
    assert grad_x.dtype == x_half.dtype
    # Reference: the same (already rounded) half values, computed in float64.
    ref = numpy_reference.sampled_loss(
        KIND[fn],
        np.asarray(tf.cast(w_used, tf.float64)),
        np.asarray(tf.cast(b_used, tf.float64)),
        labels,
        np.asarray(tf.cast(x_half, tf.float64)),
        sv,
        True,
        ct,
    )[0]
    np.testing.assert_allclose(loss.numpy(), ref, rtol=1e-5)


def test_builtin_rejects_half_inputs_that_we_accept():
    """Documents the TensorFlow failure this package fixes."""
    w, b, labels, x, sv, _ = make_problem(1, True)
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError, ValueError)):
        tf.compat.v1.nn.sampled_softmax_loss(
            w, b, labels, tf.cast(x, tf.float16), NUM_SAMPLED, NUM_CLASSES, sampled_values=sv
        )
    assert (
        tsn.sampled_softmax_loss(
            w, b, labels, tf.cast(x, tf.float16), NUM_SAMPLED, NUM_CLASSES, sampled_values=sv
        ).dtype
        == tf.float32
    )


@pytest.mark.parametrize(
    "make_weights",
    [
        lambda w: tf.constant(w),
        lambda w: tf.Variable(w),
        lambda w: keras.Variable(w),
        lambda w: [tf.Variable(w[0::2]), tf.Variable(w[1::2])],
    ],
    ids=["tensor", "tf_variable", "keras_variable", "shards"],
)
@pytest.mark.parametrize("fn", LOSSES)
def test_weight_and_bias_gradients_stay_sparse(fn, make_weights):
    w, b, labels, x, _, _ = make_problem(1, True)
    weights = make_weights(w)
    biases = tf.Variable(b)
    sources = weights if isinstance(weights, list) else [weights]
    with tf.GradientTape() as tape:
        tape.watch([s for s in sources if isinstance(s, tf.Tensor)])
        loss = fn(weights, biases, labels, x, NUM_SAMPLED, NUM_CLASSES)
    grads = tape.gradient(loss, sources + [biases])
    assert all(isinstance(g, tf.IndexedSlices) for g in grads), [type(g) for g in grads]


# Each bad input, the error type, and words the message must contain.
BAD_INPUTS = [
    (dict(labels=np.zeros((5, 2), np.int64)), ValueError, ["labels", "(5, 2)"]),
    (dict(labels=np.zeros((5, 1, 1), np.int64)), ValueError, ["labels", "(5, 1, 1)"]),
    (dict(labels=np.zeros((4, 1), np.int64)), ValueError, ["labels", "batch size 4"]),
    (dict(labels=np.full((5, 1), 1.5, np.float32)), ValueError, ["labels", "1.5", "whole"]),
    (dict(labels=np.full((5, 1), "1")), TypeError, ["labels", "string"]),
    (
        dict(num_sampled=NUM_CLASSES + 1, sampled_values=None),
        ValueError,
        ["num_sampled", str(NUM_CLASSES + 1)],
    ),
    (dict(num_sampled=0), ValueError, ["num_sampled", "0"]),
    (dict(num_sampled=2.5), TypeError, ["num_sampled", "2.5"]),
    (dict(num_classes=-3), ValueError, ["num_classes", "-3"]),
    (dict(num_true=0), ValueError, ["num_true", "0"]),
    (dict(partition_strategy="rows"), ValueError, ["partition_strategy", "'rows'"]),
    (dict(inputs=np.zeros((5, 7), np.float32)), ValueError, ["inputs", "dim 7"]),
    (dict(inputs=np.zeros((5, 6), np.int32)), TypeError, ["inputs", "int32"]),
    (
        dict(num_classes=NUM_CLASSES - 1),
        ValueError,
        ["weights", str(NUM_CLASSES), str(NUM_CLASSES - 1)],
    ),
    (
        dict(
            sampled_values=(
                np.arange(12).reshape(3, 4),
                np.ones((5, 1), np.float32),
                np.ones(12, np.float32),
            )
        ),
        ValueError,
        ["sampled_values[0]", "(3, 4)"],
    ),
    (
        dict(
            sampled_values=(
                np.arange(NUM_SAMPLED),
                np.ones((5, 2), np.float32),
                np.ones(NUM_SAMPLED, np.float32),
            )
        ),
        ValueError,
        ["sampled_values[1]", "(5, 2)"],
    ),
    (dict(sampled_values=(np.arange(NUM_SAMPLED),)), ValueError, ["sampled_values"]),
]


@pytest.mark.parametrize("overrides,error,words", BAD_INPUTS)
@pytest.mark.parametrize("fn", LOSSES)
def test_bad_input_raises_clear_error(fn, overrides, error, words):
    w, b, labels, x, sv, _ = make_problem(1, True)
    args = dict(
        weights=w,
        biases=b,
        labels=labels,
        inputs=x,
        num_sampled=NUM_SAMPLED,
        num_classes=NUM_CLASSES,
        sampled_values=sv,
    )
    args.update(overrides)
    with pytest.raises(error) as info:
        fn(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("bad_label", [-1, NUM_CLASSES])
@pytest.mark.parametrize("fn", LOSSES)
def test_out_of_range_labels_raise_eagerly_and_traced(fn, bad_label):
    w, b, labels, x, sv, _ = make_problem(1, True)
    labels = labels.copy()
    labels[2, 0] = bad_label
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels"):
        fn(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv)
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels"):
        tf.function(lambda lab: fn(w, b, lab, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv))(
            labels
        )


def test_out_of_range_sampled_candidates_raise():
    w, b, labels, x, sv, _ = make_problem(1, True)
    bad = (np.full(NUM_SAMPLED, NUM_CLASSES + 5), sv[1], sv[2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="sampled_values"):
        tsn.nce_loss(w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=bad)


def test_shards_that_do_not_add_up_to_num_classes_raise():
    w, b, labels, x, sv, _ = make_problem(1, True)
    with pytest.raises(ValueError, match=r"weights.*\[20, 19\].*39.*40"):
        tsn.sampled_softmax_loss(
            [w[:20], w[20:39]],
            b,
            labels,
            x,
            NUM_SAMPLED,
            NUM_CLASSES,
            sampled_values=sv,
            partition_strategy="div",
        )


def test_mod_rejects_shard_sizes_that_cannot_come_from_mod():
    w, b, labels, x, sv, _ = make_problem(1, True)
    with pytest.raises(ValueError, match=r"\[5, 35\].*mod.*\[20, 20\]"):
        tsn.sampled_softmax_loss(
            [w[:5], w[5:]],
            [b[:5], b[5:]],
            labels,
            x,
            NUM_SAMPLED,
            NUM_CLASSES,
            sampled_values=sv,
            partition_strategy="mod",
        )
