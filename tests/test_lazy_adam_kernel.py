"""LazyAdam's fused C++ row update (``TfSampling>ResourceSparseApplyLazyAdam``).

The reference is LazyAdam's TensorFlow-ops path (itself tested against Keras'
Adam and NumPy in test_optimizers*.py), run on the same gradients with the
kernels switched off (``tf_sampling.ops.custom_kernels(False)``): the two must
give the same bits, for both ``second_moment`` modes, weight decay, both
dtypes and both index dtypes. The raw op is held against NumPy and, bit for
bit, against the pure functions of ``tf_sampling.optimizers.adam_rows``.
Bad input must fail before any row is written.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import ops, optimizers
from tf_sampling.optimizers import adam_rows

ROWS, DIM, STEPS = 40, 6, 6
OP_TYPE = "TfSampling>ResourceSparseApplyLazyAdam"

pytestmark = pytest.mark.skipif(
    not ops.lazy_adam_kernel_available(), reason="the op library is not built"
)


def _steps(dtype, index_dtype, seed=0):
    """Per step: slices with repeated indices (a third of them repeats), rows never touched."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        n = int(rng.integers(5, 30))
        # Rows 0..ROWS-5 only: the last four rows are never touched.
        idx = rng.integers(0, ROWS - 4, size=n)
        idx[: n // 3] = idx[n // 3 : 2 * (n // 3)]
        values = rng.normal(size=(n, DIM)).astype(dtype)
        out.append(
            tf.IndexedSlices(
                tf.constant(values), tf.constant(idx, index_dtype), tf.constant([ROWS, DIM])
            )
        )
    return out


def _train(opt, steps, dtype, fused, compiled):
    init = np.random.default_rng(7).normal(size=(ROWS, DIM)).astype(dtype)
    variable = keras.Variable(init, dtype=dtype)
    opt.build([variable])

    def step(grad):
        opt.apply([grad], [variable])

    run = tf.function(step, jit_compile=False) if compiled else step
    with ops.custom_kernels(fused):  # off: the TensorFlow-ops path, the reference
        for grad in steps:
            run(grad)
    slots = [v.numpy() for v in opt.variables if v.path.endswith(("_momentum", "_velocity"))]
    return init, variable.numpy(), slots


CONFIGS = [
    (optimizers.LazyAdam, {"learning_rate": 0.05, "second_moment": "summed"}),
    (optimizers.LazyAdam, {"learning_rate": 0.05}),  # the default: per_lookup
    (optimizers.LazyAdamW, {"learning_rate": 0.05, "weight_decay": 0.3, "second_moment": "summed"}),
    (optimizers.LazyAdamW, {"learning_rate": 0.05, "weight_decay": 0.3}),
    (optimizers.LazyAdam, {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
]
CONFIG_IDS = ["summed", "per_lookup", "adamw_summed", "adamw_per_lookup", "betas"]


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_kernel_equals_the_tensorflow_ops_path_bit_for_bit(
    cls, kwargs, dtype, index_dtype, compiled
):
    steps = _steps(dtype, index_dtype)
    init, fused_w, fused_slots = _train(cls(**kwargs), steps, dtype, True, compiled)
    _, ops_w, ops_slots = _train(cls(**kwargs), steps, dtype, False, compiled)
    assert not np.array_equal(fused_w, init)  # it trained
    if compiled and "weight_decay" in kwargs:
        # Grappler's arithmetic optimizer turns the TF-ops path's
        # `rows * weight_decay * lr` into `rows * (weight_decay * lr)` in a
        # graph (checked: with it off the bits are equal): 1 ulp apart.
        np.testing.assert_allclose(fused_w, ops_w, rtol=2e-7 if dtype == "float32" else 1e-15)
    else:
        np.testing.assert_array_equal(fused_w, ops_w)
    assert len(fused_slots) == len(ops_slots) == 2
    for fused, ref in zip(fused_slots, ops_slots, strict=True):
        np.testing.assert_array_equal(fused, ref)
    # Never-touched rows: weights as initialized, moments zero.
    np.testing.assert_array_equal(fused_w[-4:], init[-4:])
    for slot in fused_slots:
        np.testing.assert_array_equal(slot[-4:], 0)


def _graph_op_types(opt, variable, grad):
    fn = tf.function(lambda g: opt.apply([g], [variable]))
    graph = fn.get_concrete_function(grad).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize(
    ("kwargs", "fused"),
    [
        ({}, True),
        ({"second_moment": "summed"}, True),
        ({"amsgrad": True}, False),
        ({"catch_up": True}, False),
    ],
    ids=["default_per_lookup", "summed", "amsgrad", "catch_up"],
)
def test_the_kernel_is_what_runs_where_it_applies(kwargs, fused):
    opt = optimizers.LazyAdam(**kwargs)
    variable = keras.Variable(np.zeros((ROWS, DIM), "float32"))
    opt.build([variable])
    grad = _steps("float32", tf.int64)[0]
    types = _graph_op_types(opt, variable, grad)
    assert (OP_TYPE in types) is fused


def test_switched_off_the_tensorflow_ops_path_runs_until_switched_on():
    opt = optimizers.LazyAdam()
    variable = keras.Variable(np.zeros((ROWS, DIM), "float32"))
    opt.build([variable])
    grad = _steps("float32", tf.int64)[0]
    with ops.custom_kernels(False):
        assert not ops.custom_kernels_enabled()
        types = _graph_op_types(opt, variable, grad)
    assert OP_TYPE not in types
    assert "ResourceScatterUpdate" in types
    assert ops.custom_kernels_enabled()
    assert OP_TYPE in _graph_op_types(opt, variable, grad)


def test_without_the_library_the_tensorflow_ops_path_runs(monkeypatch):
    monkeypatch.setattr(ops, "lazy_adam_kernel_available", lambda: False)
    opt = optimizers.LazyAdam()
    variable = keras.Variable(np.zeros((ROWS, DIM), "float32"))
    opt.build([variable])
    types = _graph_op_types(opt, variable, _steps("float32", tf.int64)[0])
    assert OP_TYPE not in types
    assert "ResourceScatterUpdate" in types  # the slots' rows written by the TF ops


def test_dense_gradients_do_not_use_the_kernel():
    opt = optimizers.LazyAdam()
    variable = keras.Variable(np.zeros((ROWS, DIM), "float32"))
    opt.build([variable])
    types = _graph_op_types(opt, variable, tf.ones((ROWS, DIM)))
    assert OP_TYPE not in types


# ----------------------------------------------------------------------- the raw op
def _raw_args(dtype=tf.float32):
    return {
        "alpha": tf.constant(0.1, dtype),
        "one_minus_beta_1": tf.constant(0.1, dtype),
        "one_minus_beta_2": tf.constant(0.001, dtype),
        "epsilon": tf.constant(1e-7, dtype),
        "learning_rate": tf.constant(0.1, dtype),
    }


def _raw_variables(rows=5, dim=3, dtype=tf.float32):
    rng = np.random.default_rng(3)
    return [tf.Variable(rng.normal(size=(rows, dim)), dtype=dtype) for _ in range(3)]


def test_raw_op_matches_numpy():
    var, m, v = _raw_variables()
    w0, m0, v0 = (x.numpy() for x in (var, m, v))
    v.assign(tf.abs(v))
    v0 = v.numpy()
    grad = np.random.default_rng(4).normal(size=(4, 3)).astype("float32")
    idx = np.array([3, 1, 3, 0])
    ops.resource_sparse_apply_lazy_adam(
        var, m, v, tf.constant(grad), tf.constant(idx), per_lookup_second_moment=True, **_raw_args()
    )
    w, mm, vv = w0.copy(), m0.copy(), v0.copy()
    for r in np.unique(idx):
        g = grad[idx == r].sum(0)
        s = (grad[idx == r] ** 2).sum(0)
        mm[r] += (g - mm[r]) * 0.1
        vv[r] += (s - vv[r]) * 0.001
        w[r] -= mm[r] * 0.1 / (np.sqrt(vv[r]) + 1e-7)
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5)
    np.testing.assert_allclose(m.numpy(), mm, rtol=1e-5)
    np.testing.assert_allclose(v.numpy(), vv, rtol=1e-5)
    np.testing.assert_array_equal(var.numpy()[[2, 4]], w0[[2, 4]])


@pytest.mark.parametrize("second_moment", ["per_lookup", "summed"])
@pytest.mark.parametrize("weight_decay", [None, 0.25])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_raw_op_equals_the_row_functions_bit_for_bit(second_moment, weight_decay, dtype):
    beta_1, beta_2, epsilon, lr, step = 0.9, 0.999, 1e-7, 0.05, 3
    var, m, v = _raw_variables(rows=6, dtype=dtype)
    v.assign(tf.abs(v))
    w0, m0, v0 = (x.numpy() for x in (var, m, v))
    grad = tf.constant(np.random.default_rng(5).normal(size=(7, 3)), dtype)
    idx = tf.constant([4, 1, 4, 0, 4, 1, 2], tf.int64)
    learning_rate = tf.constant(lr, dtype)
    alpha = adam_rows.step_size(learning_rate, beta_1, beta_2, step)
    ops.resource_sparse_apply_lazy_adam(
        var,
        m,
        v,
        grad,
        idx,
        alpha=alpha,
        one_minus_beta_1=tf.constant(1 - beta_1, dtype),
        one_minus_beta_2=tf.constant(1 - beta_2, dtype),
        epsilon=tf.constant(epsilon, dtype),
        learning_rate=learning_rate,
        weight_decay=None if weight_decay is None else tf.constant(weight_decay, dtype),
        per_lookup_second_moment=second_moment == "per_lookup",
    )
    summed, squared = adam_rows.sum_lookups(tf.IndexedSlices(grad, idx), second_moment)
    rows = summed.indices.numpy()
    w = tf.constant(w0[rows])
    if weight_decay is not None:
        w -= adam_rows.decay(w, learning_rate, weight_decay)
    new_m, new_v = adam_rows.moments(
        tf.constant(m0[rows]), tf.constant(v0[rows]), summed.values, squared, beta_1, beta_2
    )
    w -= adam_rows.decrement(new_m, new_v, alpha, epsilon)
    for got, before, expected in ((var, w0, w), (m, m0, new_m), (v, v0, new_v)):
        want = before.copy()
        want[rows] = expected.numpy()
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(var.numpy()[[3, 5]], w0[[3, 5]])  # never touched


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indices": [1, 5]}, r"indices\[1\] = 5 is not in \[0, 5\)"),
        ({"indices": [-1, 0]}, r"indices\[0\] = -1 is not in \[0, 5\)"),
        ({"grad": np.ones((2, 4), "float32")}, "grad rows must have var's row shape"),
        ({"grad": np.ones((3, 3), "float32")}, "grad must be"),
        ({"m_shape": (5, 4)}, "m and v must have var's shape"),
        ({"same": True}, "three different variables"),
        ({"var_dtype": tf.float64}, "var must be of dtype float"),
    ],
    ids=["above", "negative", "row_shape", "count", "slot_shape", "aliased", "dtype"],
)
def test_raw_op_rejects_bad_input_and_changes_nothing(change, message):
    var, m, v = _raw_variables()
    if "m_shape" in change:
        m = tf.Variable(np.zeros(change["m_shape"], "float32"))
    if change.get("same"):
        v = m
    if "var_dtype" in change:
        var = tf.Variable(np.zeros((5, 3)), dtype=change["var_dtype"])
    before = [x.numpy().copy() for x in (var, m, v)]
    grad = change.get("grad", np.ones((2, 3), "float32"))
    indices = change.get("indices", [1, 2])
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        ops.resource_sparse_apply_lazy_adam(
            var, m, v, tf.constant(grad), tf.constant(indices, tf.int64), **_raw_args()
        )
    for x, b in zip((var, m, v), before, strict=True):
        np.testing.assert_array_equal(x.numpy(), b)


def test_raw_op_with_no_rows_changes_nothing():
    var, m, v = _raw_variables()
    before = [x.numpy().copy() for x in (var, m, v)]
    ops.resource_sparse_apply_lazy_adam(
        var, m, v, tf.zeros((0, 3)), tf.zeros((0,), tf.int64), **_raw_args()
    )
    for x, b in zip((var, m, v), before, strict=True):
        np.testing.assert_array_equal(x.numpy(), b)
