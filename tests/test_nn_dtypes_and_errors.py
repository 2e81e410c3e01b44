"""Mixed precision, sparse gradients, clear errors for bad input, and no silent wrong numbers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import loss_harness, numpy_reference
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


# ---------------------------------------------------------------------------
# No silent wrong numbers (issue 12, items 7-9 and beyond; from test_nn_hardening.py).
# Each test here failed before its fix: a loss of -inf for huge finite logits,
# NaN for non-positive expected counts, a broadcast loss for labels and inputs
# of different batch sizes in a graph with unknown shapes, and the inputs TF
# accepts that we rejected or answered with an unclear error.
# ---------------------------------------------------------------------------

TINY_NUM_CLASSES, DIM, BATCH, TINY_NUM_SAMPLED, NUM_TRUE = 12, 4, 3, 5, 2
SAMPLED = np.array([7, 0, 9, 3, 11], np.int64)
KIND_BY_NAME = {"sampled_softmax_loss": "softmax", "nce_loss": "nce"}
LOSS_NAMES = ["sampled_softmax_loss", "nce_loss", "rank_sampled_softmax_loss"]


def tiny_problem(seed=0, batch=BATCH, num_true=NUM_TRUE):
    rng = np.random.default_rng(seed)
    return dict(
        weights=rng.normal(size=(TINY_NUM_CLASSES, DIM)).astype(np.float32),
        biases=rng.normal(size=(TINY_NUM_CLASSES,)).astype(np.float32),
        labels=rng.integers(0, TINY_NUM_CLASSES, size=(batch, num_true)).astype(np.int64),
        inputs=rng.normal(size=(batch, DIM)).astype(np.float32),
        sampled_values=(
            SAMPLED,
            rng.uniform(0.1, 0.9, size=(batch, 1)).astype(np.float32),
            rng.uniform(0.1, 0.9, size=(TINY_NUM_SAMPLED,)).astype(np.float32),
        ),
    )


def call_loss(name, weights, biases, labels, inputs, sampled_values, num_true=NUM_TRUE, **kwargs):
    """One loss with the shared arguments (the rank loss keeps TINY_NUM_SAMPLED - 2)."""
    if name == "rank_sampled_softmax_loss":
        return tsn.rank_sampled_softmax_loss(
            weights,
            biases,
            labels,
            inputs,
            TINY_NUM_SAMPLED,
            TINY_NUM_SAMPLED - 2,
            TINY_NUM_CLASSES,
            num_true,
            sampled_values,
            kwargs.pop("resampling_temperature", 1.0),
            kwargs.pop("remove_accidental_hits", True),
            kwargs.pop("partition_strategy", "mod"),
            **kwargs,
        )
    return getattr(tsn, name)(
        weights,
        biases,
        labels,
        inputs,
        TINY_NUM_SAMPLED,
        TINY_NUM_CLASSES,
        num_true=num_true,
        sampled_values=sampled_values,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# Item 7: huge finite true logits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_true", [2, 3])
def test_huge_equal_true_logits_give_the_exact_loss(num_true):
    """True logits of 2.25e38 (finite float32) each: the loss is log(num_true), not -inf."""
    weights = np.zeros((TINY_NUM_CLASSES, DIM), np.float32)
    biases = np.zeros(TINY_NUM_CLASSES, np.float32)
    labels = np.tile(np.arange(1, 1 + num_true), (BATCH, 1))
    biases[labels[0]] = 2.25e38
    inputs = np.ones((BATCH, DIM), np.float32)
    sampled_values = (np.array([5, 6, 7, 8, 9]), np.ones((BATCH, 1)), np.ones(TINY_NUM_SAMPLED))
    with tf.GradientTape() as tape:
        x = tf.constant(inputs)
        tape.watch(x)
        loss = tsn.sampled_softmax_loss(
            weights,
            biases,
            labels,
            x,
            TINY_NUM_SAMPLED,
            TINY_NUM_CLASSES,
            num_true=num_true,
            sampled_values=sampled_values,
        )
    # Softmax 1/num_true on each true class, the target: cross-entropy log(num_true).
    np.testing.assert_allclose(loss.numpy(), np.log(num_true), rtol=1e-6)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), 0.0)


# ---------------------------------------------------------------------------
# Item 8: expected counts that are not positive and finite
# ---------------------------------------------------------------------------

BAD_COUNTS = [0.0, -0.5, np.nan, np.inf]


def with_bad_count(sampled_values, which, bad):
    values = [np.array(v, np.float32, copy=True) if k else v for k, v in enumerate(sampled_values)]
    values[which].flat[1] = bad
    return tuple(values)


@pytest.mark.parametrize("which", [1, 2], ids=["true_expected_count", "sampled_expected_count"])
@pytest.mark.parametrize("bad", BAD_COUNTS, ids=str)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bad_counts_as_numpy_raise_value_error(name, bad, which):
    p = tiny_problem()
    sampled_values = with_bad_count(p["sampled_values"], which, bad)
    with pytest.raises(ValueError) as info:
        call_loss(name, p["weights"], p["biases"], p["labels"], p["inputs"], sampled_values)
    message = str(info.value)
    assert f"sampled_values[{which}]" in message and "positive and finite" in message, message
    assert str(float(bad)) in message, message


@pytest.mark.parametrize("which", [1, 2], ids=["true_expected_count", "sampled_expected_count"])
@pytest.mark.parametrize("bad", BAD_COUNTS, ids=str)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bad_counts_as_tensors_raise_invalid_argument_eagerly_and_traced(name, bad, which):
    p = tiny_problem()
    sampled_values = with_bad_count(p["sampled_values"], which, bad)
    tensors = tuple(tf.constant(v) for v in sampled_values)
    args = (p["weights"], p["biases"], p["labels"], p["inputs"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"sampled_values\[{which}\]"):
        call_loss(name, *args, tensors)
    traced = tf.function(lambda ids, true, sampled: call_loss(name, *args, (ids, true, sampled)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"sampled_values\[{which}\]"):
        traced(*tensors)
    # The same traced function still gives the right numbers for good counts.
    good = tuple(tf.constant(v) for v in p["sampled_values"])
    np.testing.assert_allclose(
        traced(*good).numpy(), call_loss(name, *args, good).numpy(), rtol=1e-6
    )


def test_bad_counts_fed_in_a_tf1_session_raise():
    p = tiny_problem()
    with tf.Graph().as_default():
        sampled_counts = tf.compat.v1.placeholder(tf.float32, [None])
        loss = tsn.nce_loss(
            p["weights"],
            p["biases"],
            p["labels"],
            p["inputs"],
            TINY_NUM_SAMPLED,
            TINY_NUM_CLASSES,
            num_true=NUM_TRUE,
            sampled_values=(SAMPLED, p["sampled_values"][1], sampled_counts),
        )
        with tf.compat.v1.Session() as sess:
            good = sess.run(loss, {sampled_counts: p["sampled_values"][2]})
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[2\].*-1"):
                sess.run(loss, {sampled_counts: [0.5, -1.0, 0.5, 0.5, 0.5]})
    expected = numpy_reference.sampled_loss(
        "nce",
        p["weights"],
        p["biases"],
        p["labels"],
        p["inputs"],
        p["sampled_values"],
        False,
        np.ones(BATCH),
    )[0]
    np.testing.assert_allclose(good, expected, rtol=1e-5)


# ---------------------------------------------------------------------------
# Item 9: unknown batch sizes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label_spec", [[None, None], [None, NUM_TRUE], None], ids=["none_none", "none_2", "no_rank"]
)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_labels_and_inputs_of_different_batch_sizes_fail_at_run_time(name, label_spec):
    p = tiny_problem()
    w, b, sv = p["weights"], p["biases"], p["sampled_values"]

    @tf.function(
        input_signature=[
            tf.TensorSpec(label_spec, tf.int64),
            tf.TensorSpec([None, DIM], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
        ]
    )
    def loss(labels, inputs, true_counts):
        return call_loss(name, w, b, labels, inputs, (sv[0], true_counts, sv[2]))

    right = loss(p["labels"], p["inputs"], sv[1]).numpy()
    np.testing.assert_allclose(
        right, call_loss(name, w, b, p["labels"], p["inputs"], sv), rtol=1e-6
    )
    # One label row broadcast against three inputs (or the reverse) was a silent wrong loss.
    for labels, inputs in ((p["labels"][:1], p["inputs"]), (p["labels"], p["inputs"][:1])):
        with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
            loss(labels, inputs, sv[1][:1])
    if label_spec != [None, NUM_TRUE]:  # labels with the wrong number of columns
        with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
            loss(np.zeros((BATCH, NUM_TRUE + 1), np.int64), p["inputs"], sv[1])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_true_counts_of_another_batch_size_fail_at_run_time(name):
    p = tiny_problem()
    w, b, sv = p["weights"], p["biases"], p["sampled_values"]

    @tf.function(
        input_signature=[tf.TensorSpec([None, DIM], tf.float32), tf.TensorSpec(None, tf.float32)]
    )
    def loss(inputs, true_counts):
        labels = p["labels"][:1] if inputs.shape[0] == 1 else p["labels"]
        return call_loss(
            name,
            w,
            b,
            tf.tile(labels[:1], [tf.shape(inputs)[0], 1]),
            inputs,
            (sv[0], true_counts, sv[2]),
        )

    for good in (0.5, [0.5], [[0.5]], [[0.5, 0.25]], np.full((BATCH, 1), 0.5)):
        assert loss(p["inputs"], np.asarray(good, np.float32)).shape == (BATCH,)
    # [1, 2] counts with one example would grow to... nothing wrong; [3, 2] with one example
    # would grow the loss to three rows in TF.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[1\].*broadcast"):
        loss(p["inputs"][:1], np.full((BATCH, NUM_TRUE), 0.5, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[1\].*broadcast"):
        loss(p["inputs"], np.full((2, 1), 0.5, np.float32))


def test_unknown_rank_inputs_and_candidates_are_checked_at_run_time():
    p = tiny_problem()

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.int64)])
    def loss(inputs, candidates):
        return tsn.sampled_softmax_loss(
            p["weights"],
            p["biases"],
            p["labels"],
            inputs,
            TINY_NUM_SAMPLED,
            TINY_NUM_CLASSES,
            num_true=NUM_TRUE,
            sampled_values=(candidates, *p["sampled_values"][1:]),
        )

    np.testing.assert_allclose(
        loss(p["inputs"], SAMPLED).numpy(),
        call_loss(
            "sampled_softmax_loss",
            p["weights"],
            p["biases"],
            p["labels"],
            p["inputs"],
            p["sampled_values"],
        ).numpy(),
        rtol=1e-6,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"tensor inputs \[3,1,4\]"):
        loss(p["inputs"][:, None, :], SAMPLED)  # rank 3, the batch size of the labels
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[0\].*\[5\]"):
        loss(p["inputs"], SAMPLED[:4])


# ---------------------------------------------------------------------------
# Adversarial pass
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_labels_of_any_integer_dtype_are_accepted_as_tf_casts_them(name, dtype):
    p = tiny_problem()
    args = (p["weights"], p["biases"])
    ours = call_loss(name, *args, p["labels"].astype(dtype), p["inputs"], p["sampled_values"])
    int64 = call_loss(name, *args, p["labels"], p["inputs"], p["sampled_values"])
    np.testing.assert_array_equal(ours.numpy(), int64.numpy())
    if name != "rank_sampled_softmax_loss":
        builtin = getattr(tf.compat.v1.nn, name)(
            *args,
            tf.constant(p["labels"].astype(dtype)),
            p["inputs"],
            TINY_NUM_SAMPLED,
            TINY_NUM_CLASSES,
            num_true=NUM_TRUE,
            sampled_values=p["sampled_values"],
        )
        np.testing.assert_allclose(ours.numpy(), builtin.numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_missing_or_non_float_tables_raise_clear_type_errors(name):
    p = tiny_problem()
    rest = (p["labels"], p["inputs"], p["sampled_values"])
    with pytest.raises(TypeError, match="`biases` must be .* Received: biases=None"):
        call_loss(name, p["weights"], None, *rest)
    with pytest.raises(TypeError, match="`weights` must be .* Received: weights=None"):
        call_loss(name, None, p["biases"], *rest)
    with pytest.raises(
        TypeError, match="`weights` must be floating-point. Received: weights.dtype=int32"
    ):
        call_loss(name, p["weights"].astype(np.int32), p["biases"], *rest)
    with pytest.raises(TypeError, match=r"sampled_values\[1\].*string"):
        call_loss(
            name,
            p["weights"],
            p["biases"],
            p["labels"],
            p["inputs"],
            (SAMPLED, [["a"]] * BATCH, p["sampled_values"][2]),
        )


@pytest.mark.parametrize("mode", loss_harness.MODES)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_empty_batch(name, mode):
    p = tiny_problem(batch=0)
    sampled_values = (SAMPLED, np.zeros((0, 1), np.float32), p["sampled_values"][2])

    def loss_fn(weights, biases, labels, inputs, sampled_values, **_):
        return call_loss(name, weights, biases, labels, inputs, sampled_values)

    result = loss_harness.run(
        loss_fn,
        mode,
        [p["weights"]],
        [p["biases"]],
        p["labels"],
        p["inputs"],
        np.ones(0),
        sampled_values,
    )
    assert result.loss.shape == (0,)
    assert not result.grad_weights[0].any() and result.grad_inputs.shape == (0, DIM)


@pytest.mark.parametrize("input_dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
def test_other_float_dtypes_with_broadcast_counts(name, input_dtype):
    p = tiny_problem()
    inputs = tf.cast(p["inputs"], input_dtype)
    weights = tf.cast(p["weights"], input_dtype)
    loss = call_loss(name, weights, p["biases"], p["labels"], inputs, p["sampled_values"])
    assert loss.dtype == (tf.float64 if input_dtype == "float64" else tf.float32)
    as64 = [np.asarray(tf.cast(t, tf.float64)) for t in (weights, inputs)]
    expected = numpy_reference.sampled_loss(
        KIND_BY_NAME[name],
        as64[0],
        p["biases"],
        p["labels"],
        as64[1],
        p["sampled_values"],
        name == "sampled_softmax_loss",
        np.ones(BATCH),
    )[0]
    np.testing.assert_allclose(
        loss.numpy(), expected, rtol=1e-12 if input_dtype == "float64" else 1e-5
    )


@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
def test_partitioned_variable_with_broadcast_counts_in_a_tf1_graph(name, strategy):
    p = tiny_problem()
    with tf.Graph().as_default():
        weights = tf.compat.v1.get_variable(
            "w",
            initializer=tf.constant(p["weights"]),
            partitioner=tf.compat.v1.fixed_size_partitioner(3),
        )
        biases = tf.compat.v1.get_variable(
            "b",
            initializer=tf.constant(p["biases"]),
            partitioner=tf.compat.v1.fixed_size_partitioner(3),
        )
        labels = tf.compat.v1.placeholder(tf.int64, [None, None])
        inputs = tf.compat.v1.placeholder(tf.float32, [None, DIM])
        losses = [
            fn(
                weights,
                biases,
                labels,
                inputs,
                TINY_NUM_SAMPLED,
                TINY_NUM_CLASSES,
                num_true=NUM_TRUE,
                sampled_values=(SAMPLED.tolist(), 0.5, 0.25),
                partition_strategy=strategy,
            )
            for fn in (getattr(tsn, name), getattr(tf.compat.v1.nn, name))
        ]
        grads = [tf.gradients(loss, [inputs])[0] for loss in losses]
        feed = {labels: p["labels"], inputs: p["inputs"]}
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            (ours, builtin), (grad_ours, grad_builtin) = sess.run([losses, grads], feed)
            with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
                sess.run(losses[0], {labels: p["labels"][:1], inputs: p["inputs"]})
    np.testing.assert_allclose(ours, builtin, rtol=1e-5)
    np.testing.assert_allclose(grad_ours, grad_builtin, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_retracing_over_batch_sizes_keeps_the_numbers(name):
    """reduce_retracing relaxes the batch dimension to None after a second size."""
    p = tiny_problem(batch=4)
    w, b, sv = p["weights"], p["biases"], p["sampled_values"]
    loss = tf.function(
        lambda labels, inputs, counts: call_loss(
            name, w, b, labels, inputs, (sv[0], counts, sv[2])
        ),
        reduce_retracing=True,
    )
    for rows in (4, 2, 1, 3, 4):
        args = (p["labels"][:rows], p["inputs"][:rows], sv[1][:rows])
        np.testing.assert_allclose(
            loss(*args).numpy(),
            call_loss(name, w, b, *args[:2], (sv[0], args[2], sv[2])).numpy(),
            rtol=1e-6,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
        loss(p["labels"][:1], p["inputs"][:3], sv[1][:1])


def test_full_logits_argument_errors():
    from tf_sampling._core.full_logits import full_logits

    p = tiny_problem()
    w, b, x = p["weights"], p["biases"], p["inputs"]
    with pytest.raises(
        TypeError, match="`inputs` must be floating-point. Received: inputs.dtype=int32"
    ):
        full_logits(w, b, x.astype(np.int32))
    with pytest.raises(TypeError, match="`biases` must be .* Received: biases=None"):
        full_logits(w, None, x)
    with pytest.raises(
        TypeError, match="`weights` must be floating-point. Received: weights.dtype=int64"
    ):
        full_logits(w.astype(np.int64), b, x)
    with pytest.raises(ValueError, match=r"`biases` must have the shard sizes .*\[6, 6\].*\[12\]"):
        full_logits([w[0::2], w[1::2]], b, x)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_flags_seeds_and_sparse_arguments(name):
    p = tiny_problem()
    args = (p["weights"], p["biases"], p["labels"], p["inputs"], p["sampled_values"])
    # TF reads any truthy value as True: "no" would silently mask accidental hits.
    with pytest.raises(
        TypeError,
        match="`remove_accidental_hits` must be a bool. Received: remove_accidental_hits='no'",
    ):
        call_loss(name, *args, remove_accidental_hits="no")
    for flag in (0, 1):
        np.testing.assert_array_equal(
            call_loss(name, *args, remove_accidental_hits=flag).numpy(),
            call_loss(name, *args, remove_accidental_hits=bool(flag)).numpy(),
        )
    # Ragged labels are a label set (issue 26): with every row full they are the dense labels.
    ragged = tf.ragged.constant(p["labels"].tolist())
    np.testing.assert_array_equal(
        call_loss(
            name, p["weights"], p["biases"], ragged, p["inputs"], p["sampled_values"]
        ).numpy(),
        call_loss(name, *args).numpy(),
    )
    sparse = tf.sparse.from_dense(p["inputs"])
    with pytest.raises(
        TypeError, match="`inputs` must be a dense tensor .*Received: a SparseTensor"
    ):
        call_loss(name, p["weights"], p["biases"], p["labels"], sparse, p["sampled_values"])


@pytest.mark.parametrize("seed", [1.5, "7", True])
def test_seed_must_be_an_integer(seed):
    p = tiny_problem()
    with pytest.raises(TypeError, match="`seed` must be None or a Python int"):
        tsn.sampled_softmax_loss(
            p["weights"],
            p["biases"],
            p["labels"],
            p["inputs"],
            TINY_NUM_SAMPLED,
            TINY_NUM_CLASSES,
            num_true=NUM_TRUE,
            seed=seed,
        )


def test_uncorrected_logits_ignore_the_counts():
    """Without subtract_log_q the counts are unused: zeros are fine, as in TF's core."""
    from tf_sampling._core.sampled_logits import compute_sampled_logits

    p = tiny_problem()
    w, b, labels, x = p["weights"], p["biases"], p["labels"], p["inputs"]
    true_logits, sampled_logits = compute_sampled_logits(
        w,
        b,
        labels,
        x,
        TINY_NUM_SAMPLED,
        TINY_NUM_CLASSES,
        num_true=NUM_TRUE,
        sampled_values=(SAMPLED, np.zeros((BATCH, 1)), np.zeros(TINY_NUM_SAMPLED)),
        subtract_log_q=False,
    )
    np.testing.assert_allclose(
        true_logits.numpy(), np.einsum("bd,btd->bt", x, w[labels]) + b[labels], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        sampled_logits.numpy(), x @ w[SAMPLED].T + b[SAMPLED], rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"sampled_values\[2\]"):
        compute_sampled_logits(
            w,
            b,
            labels,
            x,
            TINY_NUM_SAMPLED,
            TINY_NUM_CLASSES,
            num_true=NUM_TRUE,
            sampled_values=(SAMPLED, np.ones((BATCH, 1)), np.zeros(TINY_NUM_SAMPLED)),
        )
