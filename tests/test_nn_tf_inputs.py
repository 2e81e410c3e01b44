"""Every input TensorFlow's built-ins accept with a meaningful result, we accept too.

Translated from the input-shaped cases of TF's ``nn_test.py``
(``ComputeSampledLogitsTest``: ``[batch_size, 1]`` true expected counts for every
``num_true``, Python-list candidates, int32 labels, fixed-size-partitioned
shards) and TF 1.x contrib's ``sampling_ops_test.py``
(``RankSampledSoftmaxLossTest``: ``sampled_values=(ids, [[0.5], [0.5]], [0.5] *
5)`` with ``num_true=2``), plus the other shapes TF broadcasts. Each case is
compared with ``tf.compat.v1.nn.*`` fed the same ``sampled_values`` (the rank
loss with a NumPy reference of TAPAS and with ``sampled_softmax_loss`` on the
resampled candidates), forward and gradient. What TF turns into a silently
wrong loss is rejected instead.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import loss_harness, numpy_reference

FUNCTIONS = {"softmax": "sampled_softmax_loss", "nce": "nce_loss"}

# ComputeSampledLogitsTest's problem: 5 classes, dim 10, batch 3, candidates [1, 0, 2, 3].
TF_CLASSES, TF_DIM, TF_BATCH, TF_SAMPLED = 5, 10, 3, [1, 0, 2, 3]


def tf_test_problem(num_true, seed=0):
    """Random weights, biases, inputs and labels; counts shaped as TF's test shapes them."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(TF_CLASSES, TF_DIM)).astype(np.float32)
    biases = rng.normal(size=(TF_CLASSES,)).astype(np.float32)
    inputs = rng.normal(size=(TF_BATCH, TF_DIM)).astype(np.float32)
    labels = rng.integers(0, TF_CLASSES, size=(TF_BATCH, num_true))
    sampled_values = (
        list(TF_SAMPLED),  # a Python list of ints, as in TF's test
        np.full([TF_BATCH, 1], 0.5, np.float32),  # [batch, 1] whatever num_true is
        np.full([len(TF_SAMPLED)], 0.5, np.float32),
    )
    cotangent = rng.uniform(0.5, 1.5, size=TF_BATCH)
    return weights, biases, labels, inputs, sampled_values, cotangent


def fixed_size_shards(array, num_shards):
    """Row shards as ``fixed_size_partitioner`` cuts them: the first ones one row larger."""
    rows = len(array)
    sizes = [rows // num_shards + (k < rows % num_shards) for k in range(num_shards)]
    return np.split(array, np.cumsum(sizes)[:-1])


def assert_same(ours, ref, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(ours.loss, ref.loss, rtol=rtol, atol=atol)
    for a, b in zip(
        ours.grad_weights + ours.grad_biases, ref.grad_weights + ref.grad_biases, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.grad_inputs, ref.grad_inputs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "3_shards"])
@pytest.mark.parametrize("remove_accidental_hits", [False, True], ids=["no_rah", "rah"])
@pytest.mark.parametrize("num_true", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_tf_nn_test_problems_match_builtin(kind, num_true, remove_accidental_hits, sharded, mode):
    """TF's own test inputs: [batch, 1] true counts for every num_true, list candidates."""
    w, b, labels, x, sv, ct = tf_test_problem(num_true)
    weights = fixed_size_shards(w, 3) if sharded else [w]
    biases = fixed_size_shards(b, 3) if sharded else [b]
    kwargs = dict(
        num_sampled=len(TF_SAMPLED),
        num_classes=TF_CLASSES,
        num_true=num_true,
        remove_accidental_hits=remove_accidental_hits,
        partition_strategy="div",
        convert_sampled_values=False,
    )
    name = FUNCTIONS[kind]
    ours = loss_harness.run(getattr(tsn, name), mode, weights, biases, labels, x, ct, sv, **kwargs)
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, name), mode, weights, biases, labels, x, ct, sv, **kwargs
    )
    assert_same(ours, builtin)
    loss, dw, db, dx = numpy_reference.sampled_loss(
        kind, w, b, labels, x, sv, remove_accidental_hits, ct
    )
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(ours.grad_weights), dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(ours.grad_biases), db, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()))
def test_tf_nn_test_numerics_cases(name):
    """testNCELoss / testSampledSoftmaxLoss: labels [0, 1, 2] as an int32 constant."""
    w, b, _, x, sv, _ = tf_test_problem(1)
    labels = tf.constant([0, 1, 2], shape=(TF_BATCH, 1))  # int32, as TF's test builds it
    assert labels.dtype == tf.int32
    for weights, biases in ((w, b), (fixed_size_shards(w, 3), fixed_size_shards(b, 3))):
        args = (weights, biases, labels, x, len(TF_SAMPLED), TF_CLASSES)
        kwargs = dict(num_true=1, sampled_values=sv, partition_strategy="div")
        if name == "sampled_softmax_loss":
            kwargs["remove_accidental_hits"] = False
        ours = getattr(tsn, name)(*args, **kwargs)
        builtin = getattr(tf.compat.v1.nn, name)(*args, **kwargs)
        np.testing.assert_allclose(ours.numpy(), builtin.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()))
def test_sampled_values_as_plain_python_lists(name):
    w, b, labels, x, sv, _ = tf_test_problem(2)
    as_lists = (list(sv[0]), sv[1].tolist(), sv[2].tolist())
    args = (w, b, labels.astype(np.int32), x, len(TF_SAMPLED), TF_CLASSES)
    ours = getattr(tsn, name)(*args, num_true=2, sampled_values=as_lists)
    builtin = getattr(tf.compat.v1.nn, name)(*args, num_true=2, sampled_values=as_lists)
    np.testing.assert_allclose(ours.numpy(), builtin.numpy(), rtol=1e-5, atol=1e-6)


# Shapes of the expected counts that broadcast against [batch, num_true] and
# [batch, num_sampled] without growing them (batch 3, num_true 2, num_sampled 4).
TRUE_COUNT_SHAPES = [(3, 2), (3, 1), (1, 2), (2,), (1,), (), (1, 1)]
SAMPLED_COUNT_SHAPES = [(4,), (1,), (), (1, 4), (3, 4), (3, 1), (1, 1)]


def counts(shape, seed):
    """Distinct positive counts of ``shape``, so a wrong broadcast changes the loss."""
    return np.random.default_rng(seed).uniform(0.05, 0.95, size=shape).astype(np.float32)


@pytest.mark.parametrize("mode", ["eager", "function", "graph"])
@pytest.mark.parametrize(
    "true_shape,sampled_shape",
    [(t, (4,)) for t in TRUE_COUNT_SHAPES] + [((3, 1), s) for s in SAMPLED_COUNT_SHAPES[1:]],
    ids=str,
)
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_broadcast_expected_counts_match_builtin(kind, true_shape, sampled_shape, mode):
    w, b, labels, x, _, ct = tf_test_problem(2, seed=3)
    sv = ([4, 0, 2, 3], counts(true_shape, 1), counts(sampled_shape, 2))
    kwargs = dict(num_sampled=4, num_classes=TF_CLASSES, num_true=2, remove_accidental_hits=True)
    name = FUNCTIONS[kind]
    ours = loss_harness.run(getattr(tsn, name), mode, [w], [b], labels, x, ct, sv, **kwargs)
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, name), mode, [w], [b], labels, x, ct, sv, **kwargs
    )
    assert ours.loss.shape == (TF_BATCH,)
    assert_same(ours, builtin)
    ref = numpy_reference.sampled_loss(kind, w, b, labels, x, sv, True, ct)
    np.testing.assert_allclose(ours.loss, ref[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_inputs, ref[3], rtol=1e-5, atol=1e-5)


# Counts TF would broadcast into a larger (wrong) logits matrix, or cannot
# broadcast at all: rejected with the argument and the shape.
BAD_COUNT_SHAPES = [
    dict(num_true=1, true_shape=(3, 2)),  # TF silently grows [batch, 1] logits to [batch, 2]
    dict(num_true=2, true_shape=(3, 3)),
    dict(num_true=2, true_shape=(4, 1)),
    dict(num_true=2, true_shape=(1, 3, 2)),
    dict(num_true=2, sampled_shape=(5,)),
    dict(num_true=2, sampled_shape=(4, 4)),
    dict(num_true=2, sampled_shape=(1, 3, 4)),
]


@pytest.mark.parametrize("case", BAD_COUNT_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(FUNCTIONS.values()) + ["rank_sampled_softmax_loss"])
def test_counts_that_would_grow_or_not_fit_the_logits_raise(name, case):
    num_true = case["num_true"]
    w, b, labels, x, _, _ = tf_test_problem(num_true)
    true_shape = case.get("true_shape", (3, 1))
    sampled_shape = case.get("sampled_shape", (4,))
    sv = ([4, 0, 2, 3], counts(true_shape, 1), counts(sampled_shape, 2))
    which = "sampled_values[1]" if "true_shape" in case else "sampled_values[2]"
    with pytest.raises(ValueError) as info:
        if name == "rank_sampled_softmax_loss":
            tsn.rank_sampled_softmax_loss(
                w, b, labels, x, 4, 2, TF_CLASSES, num_true, sv, 1.0, True, "mod"
            )
        else:
            getattr(tsn, name)(w, b, labels, x, 4, TF_CLASSES, num_true=num_true, sampled_values=sv)
    message = str(info.value)
    assert which in message and str(true_shape if which.endswith("[1]") else sampled_shape) in (
        message
    ), message


def test_builtin_silently_grows_logits_that_we_reject():
    """Documents the TF behaviour the rejection above avoids: a wrong loss, no error."""
    w, b, labels, x, _, _ = tf_test_problem(1)
    sv = ([4, 0, 2, 3], counts((3, 2), 1), counts((4,), 2))
    grown = tf.compat.v1.nn.sampled_softmax_loss(w, b, labels, x, 4, TF_CLASSES, sampled_values=sv)
    # TF treats the two count columns as two true classes with target 1 each.
    assert grown.shape == (TF_BATCH,)
    right = numpy_reference.sampled_loss(
        "softmax", w, b, labels, x, (sv[0], sv[1][:, :1], sv[2]), True, np.ones(TF_BATCH)
    )[0]
    assert not np.allclose(grown.numpy(), right, rtol=1e-3)


# ---------------------------------------------------------------------------
# contrib's RankSampledSoftmaxLossTest
# ---------------------------------------------------------------------------

# Weights and biases grow with the class id, so the logits do too: adaptive
# resampling keeps the three largest sampled classes, [5, 6, 7].
RANK_WEIGHTS = np.array([[c + 0.1 * k for k in range(5)] for c in range(10)], np.float32)
RANK_BIASES = np.arange(10, dtype=np.float32) / 10
RANK_LABELS = np.array([[0, 1], [1, 2]], np.int64)
RANK_INPUTS = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0, 14.0]], np.float32)
RANK_SAMPLED_VALUES = ([3, 4, 5, 6, 7], [[0.5], [0.5]], [0.5, 0.5, 0.5, 0.5, 0.5])
RANK_RESAMPLED_VALUES = ([5, 6, 7], [[0.5], [0.5]], [0.5, 0.5, 0.5])


def rank_tables(layout):
    """The class tables as contrib's test shards them (5 shards of 2 rows)."""
    if layout == "unsharded":
        return RANK_WEIGHTS, RANK_BIASES
    if layout.startswith("div"):
        weights = list(RANK_WEIGHTS.reshape(5, 2, 5))
        biases = list(RANK_BIASES.reshape(5, 2)) if layout.endswith("biases") else RANK_BIASES
    else:
        weights = [RANK_WEIGHTS[k::5] for k in range(5)]
        biases = (
            [RANK_BIASES[k::5] for k in range(5)] if layout.endswith("biases") else (RANK_BIASES)
        )
    return weights, biases


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize(
    "layout",
    ["unsharded", "div_weights", "div_weights_biases", "mod_weights", "mod_weights_biases"],
)
def test_contrib_rank_problem_matches_sampled_softmax_on_resampled(layout, mode):
    strategy = "mod" if layout.startswith("mod") else "div"
    weights, biases = rank_tables(layout)

    def both():
        rank = tsn.rank_sampled_softmax_loss(
            weights=weights,
            biases=biases,
            labels=tf.constant(RANK_LABELS),
            inputs=tf.constant(RANK_INPUTS),
            num_sampled=5,
            num_resampled=3,
            num_classes=10,
            num_true=2,
            sampled_values=RANK_SAMPLED_VALUES,
            resampling_temperature=1.0,
            remove_accidental_hits=False,
            partition_strategy=strategy,
        )
        builtin = tf.compat.v1.nn.sampled_softmax_loss(
            weights=weights,
            biases=biases,
            labels=tf.constant(RANK_LABELS),
            inputs=tf.constant(RANK_INPUTS),
            num_sampled=3,
            num_classes=10,
            num_true=2,
            sampled_values=RANK_RESAMPLED_VALUES,
            remove_accidental_hits=False,
            partition_strategy=strategy,
        )
        return rank, builtin

    if mode == "graph":
        with tf.Graph().as_default():
            tensors = both()
            with tf.compat.v1.Session() as sess:
                rank, builtin = sess.run(tensors)
    else:
        rank, builtin = (t.numpy() for t in both())
    np.testing.assert_allclose(rank, builtin, rtol=1e-5)
    expected = numpy_reference.sampled_loss(
        "softmax",
        RANK_WEIGHTS,
        RANK_BIASES,
        RANK_LABELS,
        RANK_INPUTS,
        RANK_RESAMPLED_VALUES,
        False,
        np.ones(2),
    )[0]
    np.testing.assert_allclose(rank, expected, rtol=1e-5)


@pytest.mark.parametrize("remove_accidental_hits", [False, True])
def test_contrib_rank_problem_gradients_match_numpy(remove_accidental_hits):
    w = tf.Variable(RANK_WEIGHTS)
    b = tf.Variable(RANK_BIASES)
    x = tf.constant(RANK_INPUTS)
    cotangent = np.array([0.7, 1.3])
    sampled_values = ([3, 4, 1, 6, 7], [[0.5], [0.25]], [0.5, 0.4, 0.3, 0.2, 0.1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tsn.rank_sampled_softmax_loss(
            w, b, RANK_LABELS, x, 5, 3, 10, 2, sampled_values, 2.0, remove_accidental_hits, "div"
        )
        total = tf.reduce_sum(tf.cast(loss, tf.float64) * cotangent)
    dw, db, dx = (tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, [w, b, x]))
    resampled = numpy_reference.rank_resampled_values(
        RANK_WEIGHTS, RANK_BIASES, RANK_INPUTS, sampled_values, 3, 2.0
    )
    ref = numpy_reference.sampled_loss(
        "softmax",
        RANK_WEIGHTS,
        RANK_BIASES,
        RANK_LABELS,
        RANK_INPUTS,
        resampled,
        remove_accidental_hits,
        cotangent,
    )
    for got, want in zip((loss.numpy(), dw, db, dx), ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature,resampled", [(1.0, 0), (2.12, 0), (2.13, 1), (3.0, 1)])
def test_contrib_rank_temperature_cases(temperature, resampled):
    """Resampling one of two classes: class 0 below T = 2.12, class 1 above T = 2.13."""
    weights = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    biases = tf.constant([0.0, 0.0])
    labels = tf.constant([[0], [1]], dtype=tf.int64)
    inputs = tf.constant([[6.0, -5.0 / 2.0], [-11.0, 21.0 / 2.0]])
    rank = tsn.rank_sampled_softmax_loss(
        weights,
        biases,
        labels,
        inputs,
        2,
        1,
        2,
        1,
        ([0, 1], [[1.0], [1.0]], [1.0, 1.0]),
        tf.constant(temperature),
        False,
        "div",
    )
    builtin = tf.compat.v1.nn.sampled_softmax_loss(
        weights,
        biases,
        labels,
        inputs,
        1,
        2,
        num_true=1,
        sampled_values=([resampled], [[1.0], [1.0]], [1.0]),
        remove_accidental_hits=False,
        partition_strategy="div",
    )
    np.testing.assert_allclose(rank.numpy(), builtin.numpy(), rtol=1e-6)


@pytest.mark.parametrize("num_sampled", [3, 2])
def test_contrib_rank_invalid_num_resampled(num_sampled):
    with pytest.raises(ValueError) as info:
        tsn.rank_sampled_softmax_loss(
            RANK_WEIGHTS,
            RANK_BIASES,
            RANK_LABELS,
            RANK_INPUTS,
            num_sampled,
            3,
            10,
            2,
            None,
            1.0,
            True,
            "div",
        )
    message = str(info.value)
    assert "`num_resampled`" in message and f"({num_sampled})" in message and "(3)" in message


def test_contrib_rank_missing_partition_strategy():
    with pytest.raises(ValueError, match="partition_strategy.*None"):
        tsn.rank_sampled_softmax_loss(
            RANK_WEIGHTS,
            RANK_BIASES,
            RANK_LABELS,
            RANK_INPUTS,
            2,
            1,
            10,
            2,
            None,
            1.0,
            True,
            None,
        )


@pytest.mark.parametrize("sampled_shape", [(5,), (1,), (), (1, 5), (2, 5), (2, 1)], ids=str)
@pytest.mark.parametrize("true_shape", [(2, 2), (2, 1), (1, 2), ()], ids=str)
def test_rank_loss_broadcast_counts_match_numpy(true_shape, sampled_shape):
    """Per-candidate counts follow their candidates through the resampling."""
    sampled_values = ([3, 4, 1, 6, 7], counts(true_shape, 5), counts(sampled_shape, 6))
    loss = tsn.rank_sampled_softmax_loss(
        RANK_WEIGHTS,
        RANK_BIASES,
        RANK_LABELS,
        RANK_INPUTS,
        5,
        3,
        10,
        2,
        sampled_values,
        1.5,
        True,
        "mod",
    )
    broadcast = (
        np.broadcast_to(sampled_values[2], (2, 5))
        if len(sampled_shape) == 2
        else (np.broadcast_to(sampled_values[2], (5,)))
    )
    resampled = numpy_reference.rank_resampled_values(
        RANK_WEIGHTS,
        RANK_BIASES,
        RANK_INPUTS,
        (sampled_values[0], sampled_values[1], broadcast),
        3,
        1.5,
    )
    expected = numpy_reference.sampled_loss(
        "softmax",
        RANK_WEIGHTS,
        RANK_BIASES,
        RANK_LABELS,
        RANK_INPUTS,
        resampled,
        True,
        np.ones(2),
    )[0]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("sampled_shape", [(300,), (1, 300), (6, 300), (6, 1)], ids=str)
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_broadcast_counts_on_the_many_samples_path(kind, sampled_shape):
    """Above 256 samples the offset goes through bias_add; per-example counts come after."""
    rng = np.random.default_rng(9)
    num_classes, num_sampled, batch, dim = 500, 300, 6, 4
    w = rng.normal(size=(num_classes, dim)).astype(np.float32)
    b = rng.normal(size=(num_classes,)).astype(np.float32)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=(batch, 2))
    sv = (
        rng.choice(num_classes, num_sampled, replace=False),
        counts((batch, 1), 3),
        counts(sampled_shape, 4),
    )
    ct = rng.uniform(0.5, 1.5, size=batch)
    kwargs = dict(
        num_sampled=num_sampled, num_classes=num_classes, num_true=2, remove_accidental_hits=True
    )
    name = FUNCTIONS[kind]
    ours = loss_harness.run(getattr(tsn, name), "function", [w], [b], labels, x, ct, sv, **kwargs)
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, name), "function", [w], [b], labels, x, ct, sv, **kwargs
    )
    assert_same(ours, builtin, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64", "int32"])
def test_counts_of_other_dtypes_in_a_graph(dtype):
    """Counts of any real dtype are cast; the run-time positivity check reads them all."""
    w, b, labels, x, _, _ = tf_test_problem(2)
    true_counts = tf.constant(np.full((TF_BATCH, 1), 2), dtype)
    sampled_counts = tf.constant(np.array([1, 2, 1, 2]), dtype)

    @tf.function
    def loss(true_counts, sampled_counts):
        return tsn.nce_loss(
            w,
            b,
            labels,
            x,
            4,
            TF_CLASSES,
            num_true=2,
            sampled_values=(TF_SAMPLED, true_counts, sampled_counts),
        )

    expected = numpy_reference.sampled_loss(
        "nce",
        w,
        b,
        labels,
        x,
        (TF_SAMPLED, np.full((TF_BATCH, 1), 2.0), [1.0, 2.0, 1.0, 2.0]),
        False,
        np.ones(TF_BATCH),
    )[0]
    np.testing.assert_allclose(loss(true_counts, sampled_counts).numpy(), expected, rtol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sampled_values\[2\]"):
        loss(true_counts, sampled_counts * 0)
