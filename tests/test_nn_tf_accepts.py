"""What TensorFlow's sampled losses accept, accepted with TF's numbers; XLA's dropped asserts.

Issue 22: TF's own tests pass a ``num_sampled`` that differs from the given
candidates (TF reads the candidates) and bfloat16 labels (TF casts them).
Under ``jit_compile`` the range asserts are dropped, so bad labels must give
NaN rows rather than a plausible loss.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import loss_harness, numpy_reference
from tests.test_nn_parity import NUM_CLASSES, NUM_SAMPLED, assert_results_close, make_problem

FUNCTIONS = {"softmax": "sampled_softmax_loss", "nce": "nce_loss"}


@pytest.mark.parametrize("num_sampled, mode", [(4, "graph"), (NUM_SAMPLED + 30, "eager")])
@pytest.mark.parametrize("hits", [True, False], ids=["rah", "no_rah"])
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_candidates_win_over_a_differing_num_sampled(kind, hits, num_sampled, mode):
    w, b, labels, x, sv, ct = make_problem(2, True)
    name = FUNCTIONS[kind]
    kwargs = dict(num_classes=NUM_CLASSES, num_true=2, remove_accidental_hits=hits)
    with pytest.warns(UserWarning, match=f"`num_sampled`={num_sampled} differs from the 12"):
        ours = loss_harness.run(
            getattr(tsn, name), mode, [w], [b], labels, x, ct, sv, num_sampled=num_sampled, **kwargs
        )
    loss, dw, db, dx = numpy_reference.sampled_loss(kind, w, b, labels, x, sv, hits, ct)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_weights[0], dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_biases[0], db, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-5)
    if not hits:
        # TensorFlow ignores num_sampled here (with hits removed it fails on
        # the shape, or silently broadcasts a [batch, 1] mask when it is 1).
        builtin = loss_harness.run(
            getattr(tf.compat.v1.nn, name), mode, [w], [b], labels, x, ct, sv,
            num_sampled=num_sampled, **kwargs,
        )  # fmt: skip
        assert_results_close(ours, builtin)


def test_tf_bfloat16_test_case_passes():
    """TF's nn_test testSampledSoftmaxLossBf16: bfloat16 everything, labels included."""
    w, b, labels, x, _, ct = make_problem(1, True)
    sampled = np.array([1, 0, 2, 3])
    true_expected = np.full([len(x), 1], 0.5, tf.bfloat16.as_numpy_dtype)
    sampled_expected = np.full([4], 0.5, tf.bfloat16.as_numpy_dtype)
    as_bf16 = lambda a: tf.constant(a, tf.bfloat16)  # noqa: E731
    got = tsn.sampled_softmax_loss(
        as_bf16(w), as_bf16(b), as_bf16(labels), as_bf16(x), 4, NUM_CLASSES,
        sampled_values=(sampled, true_expected, sampled_expected), remove_accidental_hits=False,
    )  # fmt: skip
    rounded = [np.asarray(as_bf16(a), np.float64) for a in (w, b, x)]
    want = numpy_reference.sampled_loss(
        "softmax", rounded[0], rounded[1], labels, rounded[2],
        (sampled, np.float64(0.5), np.float64(0.5)), False, ct,
    )[0]  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


@pytest.mark.parametrize(
    "dtype, mode",
    [("float32", "eager"), ("bfloat16", "function"), ("float16", "graph"), ("float64", "eager")],
)
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_whole_number_float_labels_equal_integer_labels(kind, dtype, mode):
    w, b, labels, x, sv, ct = make_problem(2, True)
    name = FUNCTIONS[kind]
    kwargs = dict(num_sampled=NUM_SAMPLED, num_classes=NUM_CLASSES, num_true=2)
    floats = np.asarray(tf.cast(labels, dtype))
    ours = loss_harness.run(getattr(tsn, name), mode, [w], [b], floats, x, ct, sv, **kwargs)
    ints = loss_harness.run(getattr(tsn, name), mode, [w], [b], labels, x, ct, sv, **kwargs)
    assert_results_close(ours, ints, rtol=0, atol=0)
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, name), mode, [w], [b], floats, x, ct, sv, **kwargs
    )
    assert_results_close(ours, builtin)


@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_a_fractional_label_is_an_error_where_tf_truncates(kind):
    w, b, labels, x, sv, _ = make_problem(1, True)
    fn = getattr(tsn, FUNCTIONS[kind])
    floats = labels.astype(np.float32)
    floats[2, 0] = 3.7
    # TensorFlow reads 3.7 as class 3, silently.
    truncated = labels.copy()
    truncated[2, 0] = 3
    builtin = getattr(tf.compat.v1.nn, FUNCTIONS[kind])
    np.testing.assert_array_equal(
        builtin(w, b, floats, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv).numpy(),
        builtin(w, b, truncated, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv).numpy(),
    )
    with pytest.raises(ValueError, match=r"`labels`.*whole-number.*labels\[2, 0\] = 3.7"):
        fn(w, b, floats, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`labels`.*whole-number.*3.7"):
        fn(w, b, tf.constant(floats), x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv)
    traced = tf.function(lambda lab: fn(w, b, lab, x, NUM_SAMPLED, NUM_CLASSES, sampled_values=sv))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`labels`.*whole-number.*3.7"):
        traced(tf.constant(floats))


def _compiled_step(fn, w, b, x, sv, num_true=1):
    weights, biases, inputs = tf.Variable(w), tf.Variable(b), tf.constant(x)

    @tf.function(jit_compile=True)
    def step(labels, sampled_values):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = fn(
                weights, biases, labels, inputs, NUM_SAMPLED, NUM_CLASSES, num_true=num_true,
                sampled_values=sampled_values, remove_accidental_hits=True,
            )  # fmt: skip
            total = tf.reduce_sum(loss)
        grads = tape.gradient(total, [weights, biases, inputs])
        return loss, [tf.convert_to_tensor(g) for g in grads]

    return lambda labels, sampled_values=sv: step(
        tf.constant(labels), tuple(tf.constant(v) for v in sampled_values)
    )


@pytest.mark.parametrize("bad", [-1, NUM_CLASSES, 2**40])
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_out_of_range_labels_under_xla_give_nan_rows(kind, bad):
    # XLA drops the range assert; the clamped lookups gave a finite, plausible
    # loss for the bad row. Eagerly and traced we raise; TF gives NaN.
    w, b, labels, x, sv, ct = make_problem(2, True)
    step = _compiled_step(getattr(tsn, FUNCTIONS[kind]), w, b, x, sv, num_true=2)
    bad_labels = labels.copy()
    bad_labels[3, 1] = bad
    loss, (dw, db, dx) = step(bad_labels)
    want = numpy_reference.sampled_loss(kind, w, b, labels, x, sv, True, np.ones(len(x)))
    good = [0, 1, 2, 4]
    assert np.isnan(loss.numpy()[3])
    np.testing.assert_allclose(loss.numpy()[good], want[0][good], rtol=1e-5)
    assert np.isnan(dx.numpy()[3]).all()
    np.testing.assert_allclose(dx.numpy()[good], want[3][good], rtol=1e-5, atol=1e-5)
    # The bad row touched the sampled rows (and its own): NaN there.
    assert np.isnan(dw.numpy()[sv[0]]).all() and np.isnan(db.numpy()[sv[0]]).all()
    # The good labels, compiled the same way, give the reference everywhere.
    loss, _ = step(labels)
    np.testing.assert_allclose(loss.numpy(), want[0], rtol=1e-5)


def test_out_of_range_candidates_under_xla_make_every_row_nan():
    w, b, labels, x, sv, _ = make_problem(1, True)
    step = _compiled_step(tsn.sampled_softmax_loss, w, b, x, sv)
    bad = (np.where(np.arange(NUM_SAMPLED) == 4, NUM_CLASSES + 3, sv[0]), sv[1], sv[2])
    loss, _ = step(labels, bad)
    assert np.isnan(loss.numpy()).all()


def test_fractional_float_label_under_xla_gives_a_nan_row():
    w, b, labels, x, sv, ct = make_problem(1, True)
    step = _compiled_step(tsn.nce_loss, w, b, x, sv)
    floats = labels.astype(np.float32)
    floats[0, 0] += 0.25
    loss, _ = step(floats)
    want = numpy_reference.sampled_loss("nce", w, b, labels, x, sv, True, ct)[0]
    assert np.isnan(loss.numpy()[0])
    np.testing.assert_allclose(loss.numpy()[1:], want[1:], rtol=1e-5)
