"""``tf_sampling.optimizers.adam_rows``: each pure function of lazy Adam's arithmetic alone.

References: NumPy (sums of repeated rows, Adam run step by step in float64 for
the skipped steps) and Keras' own ``Adam``/``AdamW`` on dense gradients, which
the composed functions must match bit for bit.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sampling.optimizers import adam_rows

INDICES = np.array([3, 1, 3, 0, 3, 1])
ORDER = [3, 1, 0]  # the unique indices, in order of first appearance


def _slices(values, indices=INDICES):
    return tf.IndexedSlices(tf.constant(values), tf.constant(indices), tf.constant([5, 2]))


def test_sum_lookups_per_lookup_sums_the_squares_of_the_lookups():
    values = np.random.default_rng(0).normal(size=(6, 2)).astype("float32")
    summed, squared = adam_rows.sum_lookups(_slices(values), "per_lookup")
    assert summed.indices.numpy().tolist() == ORDER
    np.testing.assert_array_equal(summed.dense_shape.numpy(), [5, 2])
    for row, index in enumerate(ORDER):
        lookups = values[INDICES == index]
        np.testing.assert_allclose(summed.values[row], lookups.sum(0), rtol=1e-6)
        np.testing.assert_allclose(squared[row], (lookups**2).sum(0), rtol=1e-6)


def test_sum_lookups_summed_squares_the_sum():
    values = np.random.default_rng(1).normal(size=(6, 2)).astype("float32")
    summed, squared = adam_rows.sum_lookups(_slices(values), "summed")
    assert summed.indices.numpy().tolist() == ORDER
    for row, index in enumerate(ORDER):
        total = values[INDICES == index].sum(0)
        np.testing.assert_allclose(summed.values[row], total, rtol=1e-6)
        np.testing.assert_allclose(squared[row], total**2, rtol=1e-6)
    # A row looked up once gets the same term from both rules.
    _, per_lookup = adam_rows.sum_lookups(_slices(values), "per_lookup")
    np.testing.assert_array_equal(squared[2], per_lookup[2])


def test_sum_lookups_casts_to_the_dtype_asked():
    values = np.array([[300.0, 1.0]] * 6, "float16")
    # 300**2 overflows float16; per_lookup squares after the cast to float32.
    summed, squared = adam_rows.sum_lookups(_slices(values), "per_lookup", tf.float32)
    assert summed.values.dtype == squared.dtype == tf.float32
    np.testing.assert_allclose(squared[0], [3 * 300.0**2, 3.0])
    with pytest.raises(ValueError, match=r"`second_moment`.*Received: second_moment='dense'"):
        adam_rows.sum_lookups(_slices(values), "dense")


def test_decay_is_keras_decoupled_weight_decay():
    rows = tf.constant([[1.0, -2.0], [0.5, 4.0]])
    np.testing.assert_allclose(adam_rows.decay(rows, 0.1, 0.3), rows.numpy() * 0.3 * 0.1)


def test_step_size_is_the_bias_corrected_learning_rate():
    # Python betas become float32 first, as in Keras' Adam (tf.cast of a float).
    beta_1, beta_2 = (float(np.float32(b)) for b in (0.9, 0.99))
    for step in (1, 2, 50):
        got = adam_rows.step_size(tf.constant(0.01, tf.float64), 0.9, 0.99, step)
        expected = 0.01 * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
        exact = adam_rows.step_size(tf.constant(0.01, tf.float64), beta_1, beta_2, step)
        np.testing.assert_allclose(exact.numpy(), expected, rtol=1e-12)
    assert adam_rows.step_size(0.01, 0.9, 0.99, 3).dtype == tf.float32


@pytest.mark.parametrize(
    ("keras_cls", "kwargs"),
    [
        (keras.optimizers.Adam, {"learning_rate": 0.05, "beta_1": 0.8, "epsilon": 1e-3}),
        (keras.optimizers.AdamW, {"learning_rate": 0.05, "weight_decay": 0.2}),
    ],
    ids=["adam", "adamw"],
)
def test_the_functions_composed_are_keras_adam_bit_for_bit(keras_cls, kwargs):
    # Every row looked up once per step: lazy Adam is Adam.
    reference = keras_cls(**kwargs)
    rng = np.random.default_rng(2)
    init = rng.normal(size=(4, 3)).astype("float32")
    variable = keras.Variable(init)
    reference.build([variable])
    w, m, v = tf.constant(init), tf.zeros((4, 3)), tf.zeros((4, 3))
    lr, beta_1, beta_2 = kwargs["learning_rate"], reference.beta_1, reference.beta_2
    for step in range(1, 4):
        g = tf.constant(rng.normal(size=(4, 3)).astype("float32"))
        reference.apply([g], [variable])
        if "weight_decay" in kwargs:
            w -= adam_rows.decay(w, lr, kwargs["weight_decay"])
        m, v = adam_rows.moments(m, v, g, tf.square(g), beta_1, beta_2)
        alpha = adam_rows.step_size(tf.constant(lr), beta_1, beta_2, step)
        w -= adam_rows.decrement(m, v, alpha, reference.epsilon)
        np.testing.assert_array_equal(w.numpy(), variable.numpy())


def _adam_zero_steps(w, m, v, v_hat, last, step, lr, beta_1, beta_2, eps, amsgrad, wd):
    """NumPy float64 Adam, one zero-gradient step at a time, from each row's ``last`` to ``step``."""
    w, m, v, v_hat = (np.array(x, np.float64) for x in (w, m, v, v_hat))
    for row, start in enumerate(last):
        for n in range(start + 1, step + 1):
            m[row] *= beta_1
            v[row] *= beta_2
            v_hat[row] = np.maximum(v_hat[row], v[row])
            if wd:
                w[row] -= w[row] * wd * lr
            alpha = lr * np.sqrt(1 - beta_2**n) / (1 - beta_1**n)
            w[row] -= alpha * m[row] / (np.sqrt(v_hat[row] if amsgrad else v[row]) + eps)
    return w, m, v


# Settings that float32 holds exactly (Python floats pass through float32, as in Keras).
CATCH_UP_CASES = {
    "epsilon_0": {"beta_1": 0.875, "beta_2": 1 - 2**-10, "epsilon": 0.0},
    "amsgrad": {"beta_1": 0.875, "beta_2": 1 - 2**-10, "epsilon": 2**-10, "amsgrad": True},
    "beta_2_0": {"beta_1": 0.75, "beta_2": 0.0, "epsilon": 2**-10},
    "weight_decay": {"beta_1": 0.75, "beta_2": 0.984375, "epsilon": 0.0, "weight_decay": 0.5},
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("case", CATCH_UP_CASES.values(), ids=CATCH_UP_CASES.keys())
def test_catch_up_equals_the_skipped_steps_one_by_one(case, jit):
    rng = np.random.default_rng(3)
    step, lr = 60, 0.05
    last = np.array([60, 59, 55, 55, 20, 1])  # 0, 1, 5, 5, 40 and 59 skipped steps
    w = rng.normal(size=(6, 2))
    m = rng.normal(size=(6, 2))
    v = rng.random((6, 2)) + 0.1
    v_hat = v + rng.random((6, 2))
    amsgrad = case.get("amsgrad", False)
    settings = {k: case[k] for k in ("beta_1", "beta_2", "epsilon")}

    def catch_up(w, m, v, v_hat, last):
        return adam_rows.catch_up(
            m,
            v,
            last,
            tf.constant(step, tf.int64),
            tf.constant(lr, tf.float64),
            amsgrad=amsgrad,
            v_hat=v_hat if amsgrad else None,
            weight_decay=case.get("weight_decay"),
            weights=w if "weight_decay" in case else None,
            **settings,
        )

    run = tf.function(catch_up, jit_compile=True) if jit else catch_up
    decrement, new_m, new_v = run(w, m, v, v_hat, tf.constant(last, tf.int64))
    expected = _adam_zero_steps(
        w,
        m,
        v,
        v_hat,
        last,
        step,
        lr,
        *(case[k] for k in ("beta_1", "beta_2", "epsilon")),
        amsgrad=amsgrad,
        wd=case.get("weight_decay"),
    )
    np.testing.assert_allclose(w - decrement.numpy(), expected[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(new_m.numpy(), expected[1], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(new_v.numpy(), expected[2], rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(decrement.numpy()[0], 0)  # a current row does not move


def test_series_length_covers_the_series_to_its_tolerance():
    ratio = adam_rows.series_ratio(0.9, 0.999)
    assert ratio == pytest.approx(0.9 / np.sqrt(0.999))
    terms = adam_rows.series_length(0.9, 0.999)
    assert ratio**terms < adam_rows.SERIES_TOLERANCE <= ratio ** (terms - 1)
    assert adam_rows.series_ratio(0.9, 0.5, amsgrad=True) == 0.9
    assert adam_rows.series_length(0.0, 0.999) == 1
    with pytest.raises(ValueError, match=r"`beta_1`.*Received: beta_1=0.99, beta_2=0.9"):
        adam_rows.series_length(0.99, 0.9)
