"""No silent wrong numbers from the functional losses (issue 12, items 7-9 and beyond).

Each test here failed before its fix: a loss of -inf for huge finite logits,
NaN for non-positive expected counts, a broadcast loss for labels and inputs of
different batch sizes in a graph with unknown shapes, and the inputs TF accepts
that we rejected or answered with an unclear error.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import loss_harness, numpy_reference

NUM_CLASSES, DIM, BATCH, NUM_SAMPLED, NUM_TRUE = 12, 4, 3, 5, 2
SAMPLED = np.array([7, 0, 9, 3, 11], np.int64)
KIND = {"sampled_softmax_loss": "softmax", "nce_loss": "nce"}
LOSSES = ["sampled_softmax_loss", "nce_loss", "rank_sampled_softmax_loss"]


def problem(seed=0, batch=BATCH, num_true=NUM_TRUE):
    rng = np.random.default_rng(seed)
    return dict(
        weights=rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32),
        biases=rng.normal(size=(NUM_CLASSES,)).astype(np.float32),
        labels=rng.integers(0, NUM_CLASSES, size=(batch, num_true)).astype(np.int64),
        inputs=rng.normal(size=(batch, DIM)).astype(np.float32),
        sampled_values=(
            SAMPLED,
            rng.uniform(0.1, 0.9, size=(batch, 1)).astype(np.float32),
            rng.uniform(0.1, 0.9, size=(NUM_SAMPLED,)).astype(np.float32),
        ),
    )


def call(name, weights, biases, labels, inputs, sampled_values, num_true=NUM_TRUE, **kwargs):
    """One loss with the shared arguments (the rank loss keeps NUM_SAMPLED - 2)."""
    if name == "rank_sampled_softmax_loss":
        return tsn.rank_sampled_softmax_loss(
            weights, biases, labels, inputs, NUM_SAMPLED, NUM_SAMPLED - 2, NUM_CLASSES,
            num_true, sampled_values, kwargs.pop("resampling_temperature", 1.0),
            kwargs.pop("remove_accidental_hits", True), kwargs.pop("partition_strategy", "mod"),
            **kwargs,
        )
    return getattr(tsn, name)(
        weights, biases, labels, inputs, NUM_SAMPLED, NUM_CLASSES, num_true=num_true,
        sampled_values=sampled_values, **kwargs,
    )


# ---------------------------------------------------------------------------
# Item 7: huge finite true logits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_true", [2, 3])
def test_huge_equal_true_logits_give_the_exact_loss(num_true):
    """True logits of 2.25e38 (finite float32) each: the loss is log(num_true), not -inf."""
    weights = np.zeros((NUM_CLASSES, DIM), np.float32)
    biases = np.zeros(NUM_CLASSES, np.float32)
    labels = np.tile(np.arange(1, 1 + num_true), (BATCH, 1))
    biases[labels[0]] = 2.25e38
    inputs = np.ones((BATCH, DIM), np.float32)
    sampled_values = (np.array([5, 6, 7, 8, 9]), np.ones((BATCH, 1)), np.ones(NUM_SAMPLED))
    with tf.GradientTape() as tape:
        x = tf.constant(inputs)
        tape.watch(x)
        loss = tsn.sampled_softmax_loss(
            weights, biases, labels, x, NUM_SAMPLED, NUM_CLASSES, num_true=num_true,
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
@pytest.mark.parametrize("name", LOSSES)
def test_bad_counts_as_numpy_raise_value_error(name, bad, which):
    p = problem()
    sampled_values = with_bad_count(p["sampled_values"], which, bad)
    with pytest.raises(ValueError) as info:
        call(name, p["weights"], p["biases"], p["labels"], p["inputs"], sampled_values)
    message = str(info.value)
    assert f"sampled_values[{which}]" in message and "positive and finite" in message, message
    assert str(float(bad)) in message, message


@pytest.mark.parametrize("which", [1, 2], ids=["true_expected_count", "sampled_expected_count"])
@pytest.mark.parametrize("bad", BAD_COUNTS, ids=str)
@pytest.mark.parametrize("name", LOSSES)
def test_bad_counts_as_tensors_raise_invalid_argument_eagerly_and_traced(name, bad, which):
    p = problem()
    sampled_values = with_bad_count(p["sampled_values"], which, bad)
    tensors = tuple(tf.constant(v) for v in sampled_values)
    args = (p["weights"], p["biases"], p["labels"], p["inputs"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"sampled_values\[{which}\]"):
        call(name, *args, tensors)
    traced = tf.function(lambda ids, true, sampled: call(name, *args, (ids, true, sampled)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"sampled_values\[{which}\]"):
        traced(*tensors)
    # The same traced function still gives the right numbers for good counts.
    good = tuple(tf.constant(v) for v in p["sampled_values"])
    np.testing.assert_allclose(traced(*good).numpy(), call(name, *args, good).numpy(), rtol=1e-6)


def test_bad_counts_fed_in_a_tf1_session_raise():
    p = problem()
    with tf.Graph().as_default():
        sampled_counts = tf.compat.v1.placeholder(tf.float32, [None])
        loss = tsn.nce_loss(
            p["weights"], p["biases"], p["labels"], p["inputs"], NUM_SAMPLED, NUM_CLASSES,
            num_true=NUM_TRUE, sampled_values=(SAMPLED, p["sampled_values"][1], sampled_counts),
        )
        with tf.compat.v1.Session() as sess:
            good = sess.run(loss, {sampled_counts: p["sampled_values"][2]})
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[2\].*-1"):
                sess.run(loss, {sampled_counts: [0.5, -1.0, 0.5, 0.5, 0.5]})
    expected = numpy_reference.sampled_loss(
        "nce", p["weights"], p["biases"], p["labels"], p["inputs"], p["sampled_values"], False,
        np.ones(BATCH),
    )[0]
    np.testing.assert_allclose(good, expected, rtol=1e-5)


# ---------------------------------------------------------------------------
# Item 9: unknown batch sizes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label_spec", [[None, None], [None, NUM_TRUE], None], ids=["none_none", "none_2", "no_rank"]
)
@pytest.mark.parametrize("name", LOSSES)
def test_labels_and_inputs_of_different_batch_sizes_fail_at_run_time(name, label_spec):
    p = problem()
    w, b, sv = p["weights"], p["biases"], p["sampled_values"]

    @tf.function(
        input_signature=[
            tf.TensorSpec(label_spec, tf.int64),
            tf.TensorSpec([None, DIM], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
        ]
    )
    def loss(labels, inputs, true_counts):
        return call(name, w, b, labels, inputs, (sv[0], true_counts, sv[2]))

    right = loss(p["labels"], p["inputs"], sv[1]).numpy()
    np.testing.assert_allclose(right, call(name, w, b, p["labels"], p["inputs"], sv), rtol=1e-6)
    # One label row broadcast against three inputs (or the reverse) was a silent wrong loss.
    for labels, inputs in ((p["labels"][:1], p["inputs"]), (p["labels"], p["inputs"][:1])):
        with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
            loss(labels, inputs, sv[1][:1])
    if label_spec != [None, NUM_TRUE]:  # labels with the wrong number of columns
        with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
            loss(np.zeros((BATCH, NUM_TRUE + 1), np.int64), p["inputs"], sv[1])


@pytest.mark.parametrize("name", LOSSES)
def test_true_counts_of_another_batch_size_fail_at_run_time(name):
    p = problem()
    w, b, sv = p["weights"], p["biases"], p["sampled_values"]

    @tf.function(
        input_signature=[tf.TensorSpec([None, DIM], tf.float32), tf.TensorSpec(None, tf.float32)]
    )
    def loss(inputs, true_counts):
        labels = p["labels"][:1] if inputs.shape[0] == 1 else p["labels"]
        return call(name, w, b, tf.tile(labels[:1], [tf.shape(inputs)[0], 1]), inputs,
                    (sv[0], true_counts, sv[2]))

    for good in (0.5, [0.5], [[0.5]], [[0.5, 0.25]], np.full((BATCH, 1), 0.5)):
        assert loss(p["inputs"], np.asarray(good, np.float32)).shape == (BATCH,)
    # [1, 2] counts with one example would grow to... nothing wrong; [3, 2] with one example
    # would grow the loss to three rows in TF.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[1\].*broadcast"):
        loss(p["inputs"][:1], np.full((BATCH, NUM_TRUE), 0.5, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[1\].*broadcast"):
        loss(p["inputs"], np.full((2, 1), 0.5, np.float32))


def test_unknown_rank_inputs_and_candidates_are_checked_at_run_time():
    p = problem()

    @tf.function(
        input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.int64)]
    )
    def loss(inputs, candidates):
        return tsn.sampled_softmax_loss(
            p["weights"], p["biases"], p["labels"], inputs, NUM_SAMPLED, NUM_CLASSES,
            num_true=NUM_TRUE, sampled_values=(candidates, *p["sampled_values"][1:]),
        )

    np.testing.assert_allclose(
        loss(p["inputs"], SAMPLED).numpy(),
        call("sampled_softmax_loss", p["weights"], p["biases"], p["labels"], p["inputs"],
             p["sampled_values"]).numpy(),
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
@pytest.mark.parametrize("name", LOSSES)
def test_labels_of_any_integer_dtype_are_accepted_as_tf_casts_them(name, dtype):
    p = problem()
    args = (p["weights"], p["biases"])
    ours = call(name, *args, p["labels"].astype(dtype), p["inputs"], p["sampled_values"])
    int64 = call(name, *args, p["labels"], p["inputs"], p["sampled_values"])
    np.testing.assert_array_equal(ours.numpy(), int64.numpy())
    if name != "rank_sampled_softmax_loss":
        builtin = getattr(tf.compat.v1.nn, name)(
            *args, tf.constant(p["labels"].astype(dtype)), p["inputs"], NUM_SAMPLED, NUM_CLASSES,
            num_true=NUM_TRUE, sampled_values=p["sampled_values"],
        )
        np.testing.assert_allclose(ours.numpy(), builtin.numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_missing_or_non_float_tables_raise_clear_type_errors(name):
    p = problem()
    rest = (p["labels"], p["inputs"], p["sampled_values"])
    with pytest.raises(TypeError, match="`biases` must be .* got None"):
        call(name, p["weights"], None, *rest)
    with pytest.raises(TypeError, match="`weights` must be .* got None"):
        call(name, None, p["biases"], *rest)
    with pytest.raises(TypeError, match="`weights` must be floating-point, got dtype int32"):
        call(name, p["weights"].astype(np.int32), p["biases"], *rest)
    with pytest.raises(TypeError, match=r"sampled_values\[1\].*string"):
        call(name, p["weights"], p["biases"], p["labels"], p["inputs"],
             (SAMPLED, [["a"]] * BATCH, p["sampled_values"][2]))


@pytest.mark.parametrize("mode", loss_harness.MODES)
@pytest.mark.parametrize("name", LOSSES)
def test_empty_batch(name, mode):
    p = problem(batch=0)
    sampled_values = (SAMPLED, np.zeros((0, 1), np.float32), p["sampled_values"][2])

    def loss_fn(weights, biases, labels, inputs, sampled_values, **_):
        return call(name, weights, biases, labels, inputs, sampled_values)

    result = loss_harness.run(
        loss_fn, mode, [p["weights"]], [p["biases"]], p["labels"], p["inputs"], np.ones(0),
        sampled_values,
    )
    assert result.loss.shape == (0,)
    assert not result.grad_weights[0].any() and result.grad_inputs.shape == (0, DIM)


@pytest.mark.parametrize("input_dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
def test_other_float_dtypes_with_broadcast_counts(name, input_dtype):
    p = problem()
    inputs = tf.cast(p["inputs"], input_dtype)
    weights = tf.cast(p["weights"], input_dtype)
    loss = call(name, weights, p["biases"], p["labels"], inputs, p["sampled_values"])
    assert loss.dtype == (tf.float64 if input_dtype == "float64" else tf.float32)
    as64 = [np.asarray(tf.cast(t, tf.float64)) for t in (weights, inputs)]
    expected = numpy_reference.sampled_loss(
        KIND[name], as64[0], p["biases"], p["labels"], as64[1], p["sampled_values"],
        name == "sampled_softmax_loss", np.ones(BATCH),
    )[0]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12 if input_dtype == "float64"
                               else 1e-5)


@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
def test_partitioned_variable_with_broadcast_counts_in_a_tf1_graph(name, strategy):
    p = problem()
    with tf.Graph().as_default():
        weights = tf.compat.v1.get_variable(
            "w", initializer=tf.constant(p["weights"]),
            partitioner=tf.compat.v1.fixed_size_partitioner(3),
        )
        biases = tf.compat.v1.get_variable(
            "b", initializer=tf.constant(p["biases"]),
            partitioner=tf.compat.v1.fixed_size_partitioner(3),
        )
        labels = tf.compat.v1.placeholder(tf.int64, [None, None])
        inputs = tf.compat.v1.placeholder(tf.float32, [None, DIM])
        losses = [
            fn(weights, biases, labels, inputs, NUM_SAMPLED, NUM_CLASSES, num_true=NUM_TRUE,
               sampled_values=(SAMPLED.tolist(), 0.5, 0.25), partition_strategy=strategy)
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


@pytest.mark.parametrize("name", LOSSES)
def test_retracing_over_batch_sizes_keeps_the_numbers(name):
    """reduce_retracing relaxes the batch dimension to None after a second size."""
    p = problem(batch=4)
    w, b, sv = p["weights"], p["biases"], p["sampled_values"]
    loss = tf.function(
        lambda labels, inputs, counts: call(name, w, b, labels, inputs, (sv[0], counts, sv[2])),
        reduce_retracing=True,
    )
    for rows in (4, 2, 1, 3, 4):
        args = (p["labels"][:rows], p["inputs"][:rows], sv[1][:rows])
        np.testing.assert_allclose(
            loss(*args).numpy(), call(name, w, b, *args[:2], (sv[0], args[2], sv[2])).numpy(),
            rtol=1e-6,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have shape"):
        loss(p["labels"][:1], p["inputs"][:3], sv[1][:1])


def test_full_logits_argument_errors():
    from tf_sampling._core.full_logits import full_logits

    p = problem()
    w, b, x = p["weights"], p["biases"], p["inputs"]
    with pytest.raises(TypeError, match="`inputs` must be floating-point, got dtype int32"):
        full_logits(w, b, x.astype(np.int32))
    with pytest.raises(TypeError, match="`biases` must be .* got None"):
        full_logits(w, None, x)
    with pytest.raises(TypeError, match="`weights` must be floating-point, got dtype int64"):
        full_logits(w.astype(np.int64), b, x)
    with pytest.raises(ValueError, match=r"`biases` must have the shard sizes .*\[6, 6\].*\[12\]"):
        full_logits([w[0::2], w[1::2]], b, x)


@pytest.mark.parametrize("name", LOSSES)
def test_flags_seeds_and_sparse_arguments(name):
    p = problem()
    args = (p["weights"], p["biases"], p["labels"], p["inputs"], p["sampled_values"])
    # TF reads any truthy value as True: "no" would silently mask accidental hits.
    with pytest.raises(TypeError, match="`remove_accidental_hits` must be a bool, got 'no'"):
        call(name, *args, remove_accidental_hits="no")
    for flag in (0, 1):
        np.testing.assert_array_equal(
            call(name, *args, remove_accidental_hits=flag).numpy(),
            call(name, *args, remove_accidental_hits=bool(flag)).numpy(),
        )
    ragged = tf.ragged.constant(p["labels"].tolist())
    with pytest.raises(TypeError, match="`labels` must be a dense tensor .*got a RaggedTensor"):
        call(name, p["weights"], p["biases"], ragged, p["inputs"], p["sampled_values"])
    sparse = tf.sparse.from_dense(p["inputs"])
    with pytest.raises(TypeError, match="`inputs` must be a dense tensor .*got a SparseTensor"):
        call(name, p["weights"], p["biases"], p["labels"], sparse, p["sampled_values"])


@pytest.mark.parametrize("seed", [1.5, "7", True])
def test_seed_must_be_an_integer(seed):
    p = problem()
    with pytest.raises(TypeError, match="`seed` must be None or a Python int"):
        tsn.sampled_softmax_loss(
            p["weights"], p["biases"], p["labels"], p["inputs"], NUM_SAMPLED, NUM_CLASSES,
            num_true=NUM_TRUE, seed=seed,
        )


def test_uncorrected_logits_ignore_the_counts():
    """Without subtract_log_q the counts are unused: zeros are fine, as in TF's core."""
    from tf_sampling._core.sampled_logits import compute_sampled_logits

    p = problem()
    w, b, labels, x = p["weights"], p["biases"], p["labels"], p["inputs"]
    true_logits, sampled_logits = compute_sampled_logits(
        w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, num_true=NUM_TRUE,
        sampled_values=(SAMPLED, np.zeros((BATCH, 1)), np.zeros(NUM_SAMPLED)),
        subtract_log_q=False,
    )
    np.testing.assert_allclose(
        true_logits.numpy(), np.einsum("bd,btd->bt", x, w[labels]) + b[labels], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(sampled_logits.numpy(), x @ w[SAMPLED].T + b[SAMPLED], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"sampled_values\[2\]"):
        compute_sampled_logits(
            w, b, labels, x, NUM_SAMPLED, NUM_CLASSES, num_true=NUM_TRUE,
            sampled_values=(SAMPLED, np.ones((BATCH, 1)), np.zeros(NUM_SAMPLED)),
        )
