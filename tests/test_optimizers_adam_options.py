"""LazyAdam's options: ``catch_up`` (skipped steps) and ``second_moment`` (repeated rows).

Reference: Keras' own Adam/AdamW fed the same sparse gradients. For
``catch_up`` each step's indices are unique (so Keras' handling of repeated
indices plays no part); with a tiny epsilon (or AMSGrad) the closed-form
catch-up of the skipped steps is exact up to rounding, so trajectories must
match to float32 tolerance. ``second_moment="per_lookup"`` (the default) must
equal Keras' Adam on repeated indices.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import optimizers

ROWS, DIM, STEPS = 16, 3, 16

CASES = [
    (optimizers.LazyAdam, keras.optimizers.Adam, {"learning_rate": 0.02, "epsilon": 1e-12}),
    (optimizers.LazyAdam, keras.optimizers.Adam, {"learning_rate": 0.02, "amsgrad": True}),
    (
        optimizers.LazyAdam,
        keras.optimizers.Adam,
        {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-12},
    ),
    (
        optimizers.LazyAdamW,
        keras.optimizers.AdamW,
        {"learning_rate": 0.02, "weight_decay": 0.5, "epsilon": 1e-12},
    ),
]
CASE_IDS = ["adam", "amsgrad", "betas", "adamw"]


def _irregular_steps(steps=STEPS, rows=ROWS, dim=DIM, seed=0):
    """Per step: (gradient rows [n, dim], unique indices [n]); rows skip 0 to many steps."""
    rng = np.random.default_rng(seed)
    # Row r is touched with probability decreasing in r (a Zipf-like table);
    # the last two rows are never touched.
    p = 0.9 / (1 + np.arange(rows))
    p[-2:] = 0
    out = []
    for _ in range(steps):
        idx = np.flatnonzero(rng.random(rows) < p)
        if idx.size == 0:
            idx = np.array([0])
        rng.shuffle(idx)
        out.append((rng.normal(size=(idx.size, dim)).astype("float32"), idx))
    return out


def _slices(values, idx, rows=ROWS, dim=DIM):
    return tf.IndexedSlices(
        tf.constant(values), tf.constant(idx, tf.int64), tf.constant([rows, dim], tf.int64)
    )


def _init(rows=ROWS, dim=DIM):
    return np.random.default_rng(1).normal(size=(rows, dim)).astype("float32")


def _slot_values(opt):
    """The momentum and velocity (and v_hat) of the one trained variable, in Keras' order."""
    names = ("momentum", "velocity", "velocity_hat")
    return {name: v.numpy() for v in opt.variables for name in names if v.path.endswith(f"_{name}")}


def _run(opt, steps, flush_every=None, init=None):
    variable = keras.Variable(_init() if init is None else init)
    history = []
    for t, (values, idx) in enumerate(steps):
        grad = (
            _slices(values, idx) if isinstance(values, np.ndarray) and idx is not None else values
        )
        opt.apply([grad], [variable])
        if flush_every and t % flush_every == flush_every - 1:
            opt.flush()
        history.append(variable.numpy())
    return variable, history


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(("lazy", "reference", "kwargs"), CASES, ids=CASE_IDS)
def test_flushed_trajectory_equals_keras_adam_on_irregular_sparse_gradients(
    lazy, reference, kwargs
):
    steps = _irregular_steps()
    keras_opt = reference(**kwargs)
    keras_var, keras_history = _run(keras_opt, steps)
    opt = lazy(catch_up=True, **kwargs)
    var, _ = _run(opt, steps)
    # Before the flush, rows that skipped recent steps lag behind Keras' Adam ...
    assert np.abs(var.numpy() - keras_var.numpy()).max() > 1e-3
    opt.flush()
    # ... after it every row (weights and moments) is Keras' Adam of this step.
    _close(var.numpy(), keras_var.numpy())
    for name, value in _slot_values(keras_opt).items():
        _close(_slot_values(opt)[name], value)
    # The test can fail: plain lazy updates end far from Keras' Adam.
    plain, _ = _run(lazy(**kwargs), steps)
    assert np.abs(plain.numpy() - keras_var.numpy()).max() > 1e-2


def test_flushing_at_any_time_keeps_the_trajectory_of_given_gradients():
    steps = _irregular_steps()
    _, keras_history = _run(keras.optimizers.Adam(0.02, epsilon=1e-12), steps)
    _, history = _run(optimizers.LazyAdam(0.02, epsilon=1e-12, catch_up=True), steps, flush_every=5)
    for t in (4, 9, 14):
        _close(history[t], keras_history[t])


@pytest.mark.parametrize(
    ("lazy", "reference", "kwargs"), [CASES[0], CASES[3]], ids=[CASE_IDS[0], CASE_IDS[3]]
)
def test_touched_rows_equal_keras_adam_at_every_step(lazy, reference, kwargs):
    steps = _irregular_steps(seed=2)
    _, keras_history = _run(reference(**kwargs), steps)
    _, history = _run(lazy(catch_up=True, **kwargs), steps)
    for t, (_, idx) in enumerate(steps):
        _close(history[t][idx], keras_history[t][idx])


def test_never_touched_rows_are_untouched_without_weight_decay():
    steps = _irregular_steps()
    opt = optimizers.LazyAdam(0.02, catch_up=True)
    var, _ = _run(opt, steps)
    opt.flush()
    # Rows with no gradient ever have m = 0: Adam moves them by exactly 0.
    np.testing.assert_array_equal(var.numpy()[-2:], _init()[-2:])


def test_default_epsilon_is_close_to_keras_adam():
    # The one approximation (epsilon decaying with sqrt(v) on skipped steps) is small.
    steps = _irregular_steps(seed=3)
    keras_var, _ = _run(keras.optimizers.Adam(0.02), steps)
    opt = optimizers.LazyAdam(0.02, catch_up=True)
    var, _ = _run(opt, steps)
    opt.flush()
    np.testing.assert_allclose(var.numpy(), keras_var.numpy(), rtol=1e-4, atol=1e-5)


def test_dense_and_sparse_gradients_mixed_equal_keras_adam():
    steps = _irregular_steps(steps=12, seed=4)
    rng = np.random.default_rng(5)
    mixed = []
    for t, (values, idx) in enumerate(steps):
        if t % 4 == 3:  # a dense gradient now and then: all rows must be caught up first
            mixed.append((tf.constant(rng.normal(size=(ROWS, DIM)).astype("float32")), None))
        else:
            mixed.append((values, idx))
    kwargs = {"learning_rate": 0.02, "epsilon": 1e-12}
    keras_var, _ = _run(keras.optimizers.Adam(**kwargs), mixed)
    opt = optimizers.LazyAdam(catch_up=True, **kwargs)
    var, _ = _run(opt, mixed)
    opt.flush()
    _close(var.numpy(), keras_var.numpy())


def test_dense_only_variable_equals_keras_bit_for_bit():
    grads = np.random.default_rng(6).normal(size=(5, ROWS, DIM)).astype("float32")
    a = keras.Variable(_init())
    b = keras.Variable(_init())
    keras_opt, opt = keras.optimizers.Adam(0.01), optimizers.LazyAdam(0.01, catch_up=True)
    for g in grads:
        keras_opt.apply([tf.constant(g)], [a])
        opt.apply([tf.constant(g)], [b])
    opt.flush()
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_tf_function_equals_eager_and_catches_up_duplicates_summed():
    steps = _irregular_steps(steps=6, seed=7)
    # Repeat each step's indices: with "summed" the summed gradient is what counts.
    doubled = [(np.concatenate([v, v]) / 2, np.concatenate([i, i])) for v, i in steps]
    eager_opt = optimizers.LazyAdam(0.02, catch_up=True, second_moment="summed")
    eager_var, _ = _run(eager_opt, steps)
    opt = optimizers.LazyAdam(0.02, catch_up=True, second_moment="summed")
    var = keras.Variable(_init())

    @tf.function(jit_compile=False)
    def step(values, idx):
        opt.apply([tf.IndexedSlices(values, idx, tf.constant([ROWS, DIM], tf.int64))], [var])

    for values, idx in doubled:
        step(tf.constant(values.astype("float32")), tf.constant(idx, tf.int64))
    eager_opt.flush()
    opt.flush()
    _close(var.numpy(), eager_var.numpy())


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="catch_up"):
        optimizers.LazyAdam(catch_up=1)
    with pytest.raises(ValueError, match=r"beta_1.*sqrt\(beta_2\).*beta_1=0.99, beta_2=0.9"):
        optimizers.LazyAdam(beta_1=0.99, beta_2=0.9, catch_up=True)
    with pytest.raises(ValueError, match="beta_2"):
        optimizers.LazyAdam(beta_2=1.0, catch_up=True)
    # AMSGrad's ratio is beta_1 alone, and so is beta_2 = 0's.
    optimizers.LazyAdam(beta_1=0.99, beta_2=0.9, amsgrad=True, catch_up=True)
    optimizers.LazyAdam(beta_2=0, catch_up=True)
    with pytest.raises(ValueError, match="beta_1.*beta_1=1.0"):
        optimizers.LazyAdam(beta_1=1.0, beta_2=0, catch_up=True)
    # Without catch_up, those betas are Keras' business as before.
    optimizers.LazyAdam(beta_1=0.99, beta_2=0.9)


def test_flush_is_a_no_op_without_catch_up_or_before_building():
    optimizers.LazyAdam(catch_up=True).flush()
    opt = optimizers.LazyAdam(0.02)
    var, _ = _run(opt, _irregular_steps(steps=5))
    before = var.numpy()
    opt.flush()
    np.testing.assert_array_equal(var.numpy(), before)


def test_config_round_trip():
    opt = optimizers.LazyAdamW(weight_decay=0.01, catch_up=True)
    config = json.loads(json.dumps(keras.optimizers.serialize(opt)))
    restored = keras.optimizers.deserialize(config)
    assert restored.catch_up is True
    assert restored.get_config() == opt.get_config()


def _model(vocab=30, dim=4, classes=5):
    # An embedding table (sparse gradients, rows skipped by the batches) and a dense trunk.
    # (The sampled heads gather labels and candidates together, and a candidate equal to a
    # label repeats a row, which Keras' Adam does not treat as the summed gradient.)
    inputs = keras.Input((1,), dtype="int32")
    hidden = keras.layers.Embedding(vocab, dim, name="embedding")(inputs)
    hidden = keras.layers.Flatten()(hidden)
    outputs = keras.layers.Dense(classes, name="head")(hidden)
    return keras.Model(inputs, outputs), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True
    )


def _distinct_batches(num_batches=8, batch=6, vocab=30, seed=8):
    """Token ids distinct within each batch (so Keras' Adam sees no repeated rows)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.choice(vocab, batch, replace=False) for _ in range(num_batches)])
    y = rng.integers(0, 5, size=len(x))
    return x[:, None].astype("int32"), y.astype("int32")


class _LastStepProbe(keras.callbacks.Callback):
    """Records, when validation starts and when training ends, whether every row is current."""

    def __init__(self):
        super().__init__()
        self.current = []

    def _record(self):
        opt = self.model.optimizer
        opt = getattr(opt, "inner_optimizer", opt)
        steps = int(opt.iterations.numpy())
        last = [v.numpy() for v in opt.variables if v.path.endswith("_last_step")]
        self.current.append(bool(last) and all((v == steps).all() for v in last))

    def on_test_begin(self, logs=None):
        self._record()

    def on_train_end(self, logs=None):
        self._record()


def test_catch_up_callback_flushes_before_validation_and_at_the_end(tmp_path):
    x, y = _distinct_batches(num_batches=4)
    keras.utils.set_random_seed(4)
    model, loss = _model()
    # Wrapped, so the callback must find the inner optimizer.
    opt = optimizers.SparseLossScaleOptimizer(optimizers.LazyAdam(0.05, catch_up=True))
    model.compile(optimizer=opt, loss=loss)
    probe = _LastStepProbe()
    model.fit(
        x,
        y,
        batch_size=6,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x[:6], y[:6]),
        callbacks=[optimizers.CatchUp(), probe],
    )
    assert probe.current == [True, True, True]
    # Without the callback, rows are left behind (the probe can fail).
    model.fit(x[:6], y[:6], batch_size=6, epochs=1, verbose=0, callbacks=[probe])
    assert probe.current[-1] is False
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.optimizer.inner_optimizer.catch_up
    for a, b in zip(model.optimizer.variables, reloaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --------------------------------------------------------------------------- second_moment


def _repeated_steps(steps=5, rows=6, dim=DIM, seed=9):
    """Each step touches every row once plus 4 repeats (as a batch repeats frequent words)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        idx = np.concatenate([rng.permutation(rows), rng.integers(0, rows, 4)])
        out.append((rng.normal(size=(idx.size, dim)).astype("float32"), idx))
    return out


def _run_rows(opt, steps, rows=6):
    init = np.random.default_rng(1).normal(size=(rows, DIM)).astype("float32")
    variable = keras.Variable(init)
    for values, idx in steps:
        opt.apply([_slices(values, idx, rows=rows)], [variable])
    return variable.numpy(), [v.numpy() for v in opt.variables]


@pytest.mark.parametrize(
    ("lazy", "reference", "kwargs"),
    [
        (optimizers.LazyAdam, keras.optimizers.Adam, {"learning_rate": 0.01}),
        (optimizers.LazyAdam, keras.optimizers.Adam, {"learning_rate": 0.01, "amsgrad": True}),
        (optimizers.LazyAdamW, keras.optimizers.AdamW, {"learning_rate": 0.01}),
    ],
    ids=["adam", "amsgrad", "adamw"],
)
def test_per_lookup_equals_keras_adam_on_repeated_indices(lazy, reference, kwargs):
    steps = _repeated_steps()
    expected = _run_rows(reference(**kwargs), steps)
    for got in (
        _run_rows(lazy(second_moment="per_lookup", **kwargs), steps),
        _run_rows(lazy(**kwargs), steps),  # the default
    ):
        np.testing.assert_array_equal(got[0], expected[0])
        for a, b in zip(got[1], expected[1], strict=True):
            np.testing.assert_array_equal(a, b)
    # "summed" squares the summed rows: a different v, a different trajectory.
    summed = _run_rows(lazy(second_moment="summed", **kwargs), steps)
    assert np.abs(summed[0] - expected[0]).max() > 1e-3


def test_per_lookup_equals_summed_on_rows_looked_up_once():
    steps = _irregular_steps(steps=8, seed=10)
    a = _run(optimizers.LazyAdam(0.02, second_moment="per_lookup"), steps)[0]
    b = _run(optimizers.LazyAdam(0.02, second_moment="summed"), steps)[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("option", ["clipnorm", "global_clipnorm"])
def test_per_lookup_clipping_scales_each_lookup_by_the_summed_norm(option):
    steps = [(v * 3, i) for v, i in _repeated_steps(steps=3, seed=11)]
    got = _run_rows(optimizers.LazyAdam(0.01, second_moment="per_lookup", **{option: 1.0}), steps)
    # Reference: the lookups' rows scaled in NumPy by min(1, 1 / |summed gradient|), unclipped Adam.
    scaled = []
    for values, idx in steps:
        summed = np.zeros((6, DIM))
        np.add.at(summed, idx, values.astype(np.float64))
        scaled.append(((values / max(1.0, np.linalg.norm(summed))).astype("float32"), idx))
    expected = _run_rows(keras.optimizers.Adam(0.01), scaled)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-7)


def test_second_moment_arguments_are_checked():
    for cls in (optimizers.LazyAdam, optimizers.LazyAdamW, optimizers.LazyAdagrad):
        assert cls().second_moment == "per_lookup"
        with pytest.raises(ValueError, match="second_moment.*Received: second_moment='dense'"):
            cls(second_moment="dense")
    opt = optimizers.LazyAdagrad(second_moment="summed")
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(opt))))
    assert restored.second_moment == "summed"
    opt = optimizers.LazyAdamW(second_moment="summed", catch_up=True)
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(opt))))
    assert restored.second_moment == "summed"
    assert restored.get_config() == opt.get_config()


def test_per_lookup_first_step_of_a_sampled_head_equals_keras_adam():
    # A sampled-softmax head gathers each label once per occurrence: repeated rows.
    import tf_sampling.layers
    import tf_sampling.losses

    rng = np.random.default_rng(12)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 4, size=32)  # 4 labels, each repeated about 8 times

    def first_step(opt):
        keras.utils.set_random_seed(2)
        inputs = keras.Input((6,))
        head = tf_sampling.layers.SampledSoftmax(40, num_sampled=8, seed=5, name="head")
        model = keras.Model(inputs, head(keras.layers.Dense(8)(inputs)))
        model.compile(optimizer=opt, loss=tf_sampling.losses.SampledSoftmaxLoss(), run_eagerly=True)
        model.train_on_batch(x, y)
        return [w.numpy() for w in model.weights]

    expected = first_step(keras.optimizers.Adam(0.01))
    got = first_step(optimizers.LazyAdam(0.01))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    summed = first_step(optimizers.LazyAdam(0.01, second_moment="summed"))
    assert np.abs(summed[2] - expected[2]).max() > 1e-4  # the class table differs


# --------------------------------------------------------------------------- catch_up edge cases


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta_2": 0.0, "epsilon": 0.5},
        {"beta_1": 0.5, "beta_2": 0.0, "epsilon": 1e-3},
        {"beta_2": 0.0, "epsilon": 0.5, "weight_decay": 0.3},
    ],
    ids=["beta_2_0", "beta_1_0.5", "weight_decay"],
)
def test_catch_up_with_beta_2_zero_equals_keras_adam(kwargs):
    # v is 0 on every skipped step, so each skipped step divides by epsilon alone.
    steps = _irregular_steps()
    reference = keras.optimizers.AdamW if "weight_decay" in kwargs else keras.optimizers.Adam
    keras_var, _ = _run(reference(learning_rate=0.02, **kwargs), steps)
    opt = optimizers.LazyAdam(0.02, catch_up=True, **kwargs)
    var, _ = _run(opt, steps)
    opt.flush()
    np.testing.assert_allclose(var.numpy(), keras_var.numpy(), rtol=2e-5, atol=2e-5)
    plain, _ = _run(optimizers.LazyAdam(0.02, **kwargs), steps)
    assert np.abs(plain.numpy() - keras_var.numpy()).max() > 1e-2


def _slices_of(rows, value=1.0):
    return _slices(np.full((len(rows), DIM), value, "float32"), rows)


def _lazy_history(steps=5):
    """A LazyAdam without catch_up that trained row 0 only, for ``steps`` steps."""
    variable = keras.Variable(_init())
    opt = optimizers.LazyAdam(0.1)
    for _ in range(steps):
        opt.apply([_slices_of([0])], [variable])
    return variable, opt


def _continue(opt, variable):
    opt.apply([_slices_of([0, 1], 0.5)], [variable])
    return variable.numpy()


@pytest.mark.parametrize("how", ["tf_checkpoint", "keras_store"])
def test_restoring_a_state_without_catch_up_applies_no_phantom_steps(tmp_path, how):
    variable, opt = _lazy_history()
    restored_var = keras.Variable(np.zeros((ROWS, DIM), "float32"))
    restored = optimizers.LazyAdam(0.1, catch_up=True)
    restored.build([restored_var])
    if how == "tf_checkpoint":
        path = tf.train.Checkpoint(v=variable, opt=opt).write(str(tmp_path / "ckpt"))
        tf.train.Checkpoint(v=restored_var, opt=restored).read(path).assert_nontrivial_match()
    else:
        store = {}
        opt.save_own_variables(store)
        restored.load_own_variables(store)
        restored_var.assign(variable.numpy())
    assert int(restored.iterations.numpy()) == 5
    # Row 0 is current (it was updated at every step): the next step is one Adam
    # step, as the optimizer that wrote the state takes it (not 5 replayed ones).
    expected = _continue(opt, variable)
    np.testing.assert_allclose(_continue(restored, restored_var), expected, rtol=1e-6, atol=1e-7)
    restored.flush()
    np.testing.assert_allclose(restored_var.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_restoring_a_catch_up_state_keeps_its_skipped_steps(tmp_path):
    variable = keras.Variable(_init())
    opt = optimizers.LazyAdam(0.1, catch_up=True)
    for rows in ([0, 1], [0], [0], [0]):  # row 1 skips three steps
        opt.apply([_slices_of(rows)], [variable])
    path = tf.train.Checkpoint(v=variable, opt=opt).write(str(tmp_path / "ckpt"))
    restored_var = keras.Variable(np.zeros((ROWS, DIM), "float32"))
    restored = optimizers.LazyAdam(0.1, catch_up=True)
    restored.build([restored_var])
    tf.train.Checkpoint(v=restored_var, opt=restored).read(path).assert_consumed()
    expected = _continue(opt, variable)
    np.testing.assert_allclose(_continue(restored, restored_var), expected, rtol=1e-6, atol=1e-7)
    # Row 1's skipped steps were applied (the comparison can fail: without them it differs).
    plain = optimizers.LazyAdam(0.1)
    plain_var = keras.Variable(_init())
    for rows in ([0, 1], [0], [0], [0]):
        plain.apply([_slices_of(rows)], [plain_var])
    assert np.abs(_continue(plain, plain_var)[1] - expected[1]).max() > 1e-3


def test_a_variable_starts_at_its_first_gradient():
    # Keras' AdamW skips a variable without gradients (no decay): so does catch_up
    # before the variable's first gradient.
    a, b = keras.Variable(_init()), keras.Variable(_init())
    keras_opt = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    opt = optimizers.LazyAdamW(0.1, weight_decay=0.5, catch_up=True)
    opt.build([b])
    for optimizer, variable in ((keras_opt, a), (opt, b)):
        optimizer.iterations.assign(3)  # as if three steps of other variables ran
        optimizer.apply([_slices_of(list(range(ROWS)))], [variable])
        optimizer.apply([_slices_of([2])], [variable])
    opt.flush()
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)


def _step_fn(opt, variable):
    def step(values, idx):
        grad = tf.IndexedSlices(values, idx, tf.constant([6, DIM], tf.int64))
        opt.apply([grad], [variable])

    return step


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"amsgrad": True}, {"catch_up": True}, {"catch_up": True, "weight_decay": 0.1}],
    ids=["default", "amsgrad", "catch_up", "catch_up_decay"],
)
def test_xla_compiled_steps_equal_eager_ones(kwargs):
    # catch_up's series used a unique of the rows' last steps, which XLA could not compile.
    steps = list(_repeated_steps(steps=4, seed=13))
    # Then rows skip steps, and some steps touch a single row.
    steps += [
        (v[:n], i[:n])
        for n, (v, i) in zip([2, 1, 1], _repeated_steps(steps=3, seed=14), strict=True)
    ]
    results = []
    for jit in (None, True):
        opt = optimizers.LazyAdam(0.02, **kwargs)
        variable = keras.Variable(np.random.default_rng(1).normal(size=(6, DIM)).astype("float32"))
        opt.build([variable])
        run = _step_fn(opt, variable)
        if jit:
            run = tf.function(run, jit_compile=True)
        for values, idx in steps:
            run(tf.constant(values), tf.constant(idx, tf.int64))
        opt.flush()
        results.append(variable.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)
