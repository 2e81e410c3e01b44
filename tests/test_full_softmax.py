"""Chunked full softmax / sigmoid cross-entropy and running top-k against NumPy and TF one-shot."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tf_sampling._core import class_blocks

ShardedVariable = tf.__internal__.distribute.ShardedVariable

NUM_CLASSES = 301  # prime: no chunk size below it divides it
DIM = 8
BATCH = 6
# 301 = 7 * 43, so 43 divides it; 64 and 37 do not; 301 and 500 are one-shot.
CHUNKS = [None, 43, 64, 37, 301, 500]
LOSSES = {
    "softmax": tsn.full_softmax_cross_entropy,
    "sigmoid": tsn.full_sigmoid_cross_entropy,
}


def make_problem(num_true=1, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, [NUM_CLASSES, DIM]).astype(dtype)
    b = rng.normal(0, 0.5, [NUM_CLASSES]).astype(dtype)
    x = rng.normal(0, 1.0, [BATCH, DIM]).astype(dtype)
    labels = rng.integers(0, NUM_CLASSES, [BATCH, num_true]).astype(np.int64)
    if num_true > 1:
        labels[0, 1] = labels[0, 0]  # a repeated true class counts twice
    upstream = rng.uniform(0.5, 1.5, [BATCH]).astype(np.float64)
    return w, b, labels, x, upstream


def numpy_reference(objective, w, b, labels, x, upstream):
    """Loss [n] and gradients (dx, dw, db) of sum(upstream * loss), in float64, class order."""
    w, b, x = (np.asarray(a, np.float64) for a in (w, b, x))
    logits = x @ w.T + b
    num_true = labels.shape[1]
    targets = np.zeros_like(logits)
    for i, row in enumerate(labels):
        for c in row:
            targets[i, c] += 1.0 / num_true
    # Only where a class is a target: 0 * -inf (a masked class) would be NaN.
    with np.errstate(invalid="ignore"):
        true_part = np.where(targets > 0, targets * logits, 0.0)
    if objective == "softmax":
        shift = logits.max(1, keepdims=True)
        log_z = np.log(np.exp(logits - shift).sum(1)) + shift[:, 0]
        loss = log_z - true_part.sum(1)
        probs = np.exp(logits - log_z[:, None])
    else:
        softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
        loss = (softplus - true_part).sum(1)
        probs = 1.0 / (1.0 + np.exp(-logits))
    grad_logits = (probs - targets) * upstream[:, None]
    return loss, grad_logits @ w, grad_logits.T @ x, grad_logits.sum(0)


def split(table, strategy, num_shards):
    """Shards of a [num_classes, ...] array under ``strategy``."""
    if num_shards == 1:
        return [table]
    if strategy == "mod":
        return [table[s::num_shards] for s in range(num_shards)]
    # Uneven consecutive ranges.
    bounds = [0, 50, 51, 200, len(table)][: num_shards + 1]
    bounds[-1] = len(table)
    return [table[bounds[i] : bounds[i + 1]] for i in range(num_shards)]


def unsplit(shards, strategy):
    """Inverse of :func:`split` (rows back in class order)."""
    if len(shards) == 1:
        return np.asarray(shards[0])
    if strategy == "mod":
        out = np.zeros((sum(len(s) for s in shards),) + np.shape(shards[0])[1:], shards[0].dtype)
        for k, s in enumerate(shards):
            out[k :: len(shards)] = s
        return out
    return np.concatenate(shards)


LAYOUTS = [
    ("tensor", "mod", 1),
    ("variable", "mod", 1),
    ("list", "mod", 3),
    ("list", "div", 4),
    ("variable_list", "mod", 4),
    ("sharded_variable", "mod", 3),
    ("sharded_variable", "div", 3),
]


def wrap(kind, shards):
    """Tables as the API receives them; ``sharded_variable`` is one logical table."""
    if kind == "tensor":
        return tf.constant(shards[0]), None
    if kind == "variable":
        v = tf.Variable(shards[0])
        return v, [v]
    variables = [tf.Variable(s) for s in shards]
    if kind == "variable_list":
        return variables, variables
    if kind == "sharded_variable":
        return ShardedVariable(variables), variables
    return [tf.constant(s) for s in shards], None


def run_loss(objective, layout, w, b, labels, x, upstream, chunk, mode="eager", num_true=1):
    """Loss and gradients (dx, dw rows in class order, db) through the public function."""
    kind, strategy, num_shards = layout
    if kind == "sharded_variable":
        w_shards = split(w, "div", num_shards)
        b_shards = split(b, "div", num_shards)
    else:
        w_shards, b_shards = split(w, strategy, num_shards), split(b, strategy, num_shards)
    weights, w_vars = wrap(kind, w_shards)
    biases, b_vars = wrap(kind, b_shards)
    x_t = tf.constant(x)
    up = tf.constant(upstream, tf.float32)

    def compute():
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            if w_vars is None:
                w_srcs = [weights] if not isinstance(weights, list) else list(weights)
                b_srcs = [biases] if not isinstance(biases, list) else list(biases)
                for t in w_srcs + b_srcs:
                    tape.watch(t)
            else:
                w_srcs, b_srcs = w_vars, b_vars
            loss = LOSSES[objective](
                weights,
                biases,
                labels,
                x_t,
                NUM_CLASSES,
                num_true=num_true,
                partition_strategy=strategy,
                chunk_size=chunk,
            )
            total = tf.reduce_sum(tf.cast(loss, tf.float32) * up)
        grads = tape.gradient(total, [x_t, *w_srcs, *b_srcs])
        return loss, grads

    if mode != "eager":
        compute = tf.function(compute, jit_compile=mode == "xla")
    loss, grads = compute()
    n = len(w_shards)
    dx, dws, dbs = grads[0], grads[1 : 1 + n], grads[1 + n :]
    for g in [*dws, *dbs]:
        assert isinstance(g, tf.Tensor), type(g)  # dense per shard
    layout_strategy = "div" if kind == "sharded_variable" else strategy
    return (
        loss,
        dx,
        unsplit([g.numpy() for g in dws], layout_strategy),
        unsplit([g.numpy() for g in dbs], layout_strategy),
    )


def assert_matches(result, reference, rtol=2e-5, atol=2e-5):
    for got, want in zip(result, reference, strict=True):
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda t: f"{t[0]}-{t[1]}-{t[2]}")
@pytest.mark.parametrize("chunk", [43, 37, None])
@pytest.mark.parametrize("num_true", [1, 3])
def test_loss_and_gradients_match_numpy(objective, layout, chunk, num_true):
    w, b, labels, x, up = make_problem(num_true, seed=num_true)
    result = run_loss(objective, layout, w, b, labels, x, up, chunk, num_true=num_true)
    assert result[0].dtype == tf.float32 and result[0].shape == [BATCH]
    assert_matches(result, numpy_reference(objective, w, b, labels, x, up))


@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_every_chunk_size_matches_tf_one_shot(objective, chunk):
    """Against TF's own ops on the materialized [n, num_classes] logits."""
    w, b, labels, x, up = make_problem(2, seed=5)
    logits_fn = lambda wt, bt, xt: tf.matmul(xt, wt, transpose_b=True) + bt  # noqa: E731
    wt, bt, xt = tf.constant(w), tf.constant(b), tf.constant(x)
    upt = tf.constant(up, tf.float32)
    targets = tf.reduce_sum(tf.one_hot(labels, NUM_CLASSES), 1) / 2.0
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([wt, bt, xt])
        logits = logits_fn(wt, bt, xt)
        if objective == "softmax":
            want = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        else:
            want = tf.reduce_sum(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits), 1
            )
        got = LOSSES[objective](wt, bt, labels, xt, NUM_CLASSES, num_true=2, chunk_size=chunk)
        want_total, got_total = tf.reduce_sum(want * upt), tf.reduce_sum(got * upt)
    for a, c in zip(
        [got, *tape.gradient(got_total, [xt, wt, bt])],
        [want, *tape.gradient(want_total, [xt, wt, bt])],
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
@pytest.mark.parametrize(
    "layout", [LAYOUTS[1], LAYOUTS[3], LAYOUTS[4], LAYOUTS[5]], ids=lambda t: f"{t[0]}-{t[1]}"
)
def test_traced_and_jit_compiled_match_numpy(mode, objective, layout):
    w, b, labels, x, up = make_problem(2, seed=3)
    result = run_loss(objective, layout, w, b, labels, x, up, 37, mode=mode, num_true=2)
    assert_matches(result, numpy_reference(objective, w, b, labels, x, up))


@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_tf1_session_with_partitioned_variable(strategy, objective):
    w, b, labels, x, up = make_problem(2, seed=4)
    with tf.Graph().as_default():
        partitioner = tf.compat.v1.fixed_size_partitioner(3)
        wv = tf.compat.v1.get_variable("w", shape=w.shape, partitioner=partitioner)
        bv = tf.compat.v1.get_variable("b", shape=b.shape, partitioner=partitioner)
        assert type(wv).__name__ == "PartitionedVariable"
        sizes = [int(v.shape[0]) for v in wv]
        # The partitioner's shards are consecutive sizes; under "mod" shard k holds
        # classes k, k + 3, ... (sizes 101, 100, 100 fit both layouts).
        if strategy == "mod":
            w_parts, b_parts = split(w, "mod", 3), split(b, "mod", 3)
        else:
            bounds = np.cumsum([0] + sizes)
            w_parts = [w[bounds[i] : bounds[i + 1]] for i in range(3)]
            b_parts = [b[bounds[i] : bounds[i + 1]] for i in range(3)]
        assigns = [
            v.assign(p)
            for pv, parts in ((wv, w_parts), (bv, b_parts))
            for v, p in zip(pv, parts, strict=True)
        ]
        x_t = tf.constant(x)
        loss = LOSSES[objective](
            wv, bv, labels, x_t, NUM_CLASSES, num_true=2, partition_strategy=strategy, chunk_size=37
        )
        total = tf.reduce_sum(loss * tf.constant(up, tf.float32))
        grads = tf.compat.v1.gradients(total, [x_t, *wv, *bv])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(assigns)
            values = sess.run([loss, *grads])
    dws, dbs = values[2:5], values[5:8]
    result = (values[0], values[1], unsplit(dws, strategy), unsplit(dbs, strategy))
    assert_matches(result, numpy_reference(objective, w, b, labels, x, up))


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_half_precision_accumulates_in_float32(dtype, objective):
    w, b, labels, x, up = make_problem(1, seed=6)
    # The reference sees the same rounded inputs, in float64.
    rounded = [tf.cast(tf.cast(a, dtype), tf.float64).numpy() for a in (w, b, x)]
    wt, bt, xt = (tf.constant(a, dtype) for a in rounded)
    with tf.GradientTape() as tape:
        tape.watch([wt, bt, xt])
        loss = LOSSES[objective](wt, bt, labels, xt, NUM_CLASSES, chunk_size=37)
        total = tf.reduce_sum(loss * tf.constant(up, tf.float32))
    grads = tape.gradient(total, [xt, wt, bt])
    assert loss.dtype == tf.float32
    assert [g.dtype for g in grads] == [dtype] * 3
    want = numpy_reference(objective, *rounded[:2], labels, rounded[2], up)
    # The loss is float32-accurate (no half-precision sum over 301 classes);
    # the gradients are rounded to the half dtype at the end.
    np.testing.assert_allclose(loss.numpy(), want[0], rtol=1e-5, atol=1e-5)
    grad_tol = 1e-2 if dtype == tf.bfloat16 else 2e-3
    for g, ref in zip(grads, want[1:], strict=True):
        np.testing.assert_allclose(
            tf.cast(g, tf.float64).numpy(), ref, rtol=grad_tol, atol=grad_tol
        )


@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_float64_stays_float64(objective):
    w, b, labels, x, up = make_problem(3, seed=7, dtype=np.float64)
    result = run_loss(objective, ("list", "mod", 3), w, b, labels, x, up, 37, num_true=3)
    assert result[0].dtype == tf.float64
    # upstream is cast to float32 by run_loss; compare with the same weights.
    up32 = up.astype(np.float32).astype(np.float64)
    assert_matches(result, numpy_reference(objective, w, b, labels, x, up32), rtol=1e-9, atol=1e-9)


def test_chunked_graph_never_holds_batch_by_num_classes():
    """No tensor of the traced step has a num_classes-wide logits dimension."""
    w, b, labels, x, _ = make_problem(1)
    wv, bv, xt = tf.Variable(w), tf.Variable(b), tf.constant(x)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(
                tsn.full_softmax_cross_entropy(wv, bv, labels, xt, NUM_CLASSES, chunk_size=37)
            )
        return tape.gradient(loss, [xt, wv, bv])

    def shapes(graph):
        out = [
            tuple(t.shape.as_list())
            for op in graph.get_operations()
            for t in op.outputs
            if t.shape.rank
        ]
        for func in graph._functions.values():  # the while loops' bodies
            out += shapes(func.graph) if hasattr(func, "graph") else []
        return out

    graph = step.get_concrete_function().graph
    seen = shapes(graph)
    assert (37, DIM) in seen or (BATCH, 37) in seen  # blocks are there
    assert not [s for s in seen if len(s) == 2 and NUM_CLASSES in s and s != (NUM_CLASSES, DIM)]


def test_one_shot_path_keeps_logits_and_matches():
    w, b, labels, x, up = make_problem(1)
    result = run_loss("softmax", LAYOUTS[1], w, b, labels, x, up, None)  # auto: 301 <= chunk
    assert class_blocks.auto_chunk_size(BATCH, DIM, NUM_CLASSES) == NUM_CLASSES
    assert_matches(result, numpy_reference("softmax", w, b, labels, x, up))


def test_auto_chunk_size():
    assert class_blocks.auto_chunk_size(1024, 512, 10**6) == 8192
    assert class_blocks.auto_chunk_size(None, 512, 10**6) == 8192
    assert class_blocks.auto_chunk_size(1024, 4096, 10**7) == 4096  # weights block bound
    assert class_blocks.auto_chunk_size(10**6, 128, 10**7) == 128  # at least 128
    assert class_blocks.auto_chunk_size(1024, 512, 1000) == 1000
    # One block while all the logits fit in 2^25 elements, blocks from there on.
    assert class_blocks.auto_chunk_size(None, 256, 10**4) == 10**4
    assert class_blocks.auto_chunk_size(1024, 512, 2**15) == 2**15
    assert class_blocks.auto_chunk_size(1024, 512, 2**15 + 1) == 8192
    assert class_blocks.auto_chunk_size(4480, 256, 10**4) == 1792


# ---------------------------------------------------------------------------
# top-k


def tie_problem(seed=0):
    """Small-integer logits (exact in float32): many ties."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, [NUM_CLASSES, DIM]).astype(np.float32)
    b = rng.integers(-1, 2, [NUM_CLASSES]).astype(np.float32)
    x = rng.integers(-1, 2, [BATCH, DIM]).astype(np.float32)
    return w, b, x


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda t: f"{t[0]}-{t[1]}-{t[2]}")
@pytest.mark.parametrize("chunk", [43, 37, 64, None])
@pytest.mark.parametrize("k", [1, 5, 50])
def test_top_k_matches_tf_top_k_with_ties(layout, chunk, k):
    kind, strategy, num_shards = layout
    w, b, x = tie_problem(k)
    shard_rule = "div" if kind == "sharded_variable" else strategy
    weights, _ = wrap(kind, split(w, shard_rule, num_shards))
    biases, _ = wrap(kind, split(b, shard_rule, num_shards))
    want_scores, want_ids = tf.math.top_k(tf.constant(x @ w.T + b), k)
    scores, ids = tsn.full_top_k(
        weights, biases, x, k, partition_strategy=strategy, chunk_size=chunk
    )
    assert ids.dtype == tf.int64 and scores.dtype == tf.float32 and ids.shape == [BATCH, k]
    np.testing.assert_array_equal(ids.numpy(), want_ids.numpy())
    np.testing.assert_array_equal(scores.numpy(), want_scores.numpy())


@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_top_k_traced_and_jit_compiled(mode, strategy):
    w, b, x = tie_problem(1)
    weights = [tf.constant(s) for s in split(w, strategy, 3)]
    biases = [tf.constant(s) for s in split(b, strategy, 3)]
    fn = tf.function(
        lambda: tsn.full_top_k(weights, biases, x, 20, partition_strategy=strategy, chunk_size=37),
        jit_compile=mode == "xla",
    )
    scores, ids = fn()
    want_scores, want_ids = tf.math.top_k(tf.constant(x @ w.T + b), 20)
    np.testing.assert_array_equal(ids.numpy(), want_ids.numpy())
    np.testing.assert_array_equal(scores.numpy(), want_scores.numpy())


def test_top_k_random_scores_and_half_inputs():
    w, b, _, x, _ = make_problem(1, seed=9)
    scores, ids = tsn.full_top_k(w, b, x, 100, chunk_size=64)
    logits = x.astype(np.float64) @ w.T.astype(np.float64) + b
    want = np.argsort(-logits, axis=1, kind="stable")[:, :100]
    np.testing.assert_array_equal(ids.numpy(), want)
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(logits, want, 1), rtol=1e-5)
    half_scores, _ = tsn.full_top_k(
        w.astype(np.float16), b.astype(np.float16), x.astype(np.float16), 3
    )
    assert half_scores.dtype == tf.float32


def test_top_k_k_equal_to_num_classes_with_small_shards():
    w, b, x = tie_problem(2)
    weights = split(w, "div", 4)  # the first shard has 50 rows < k
    biases = split(b, "div", 4)
    scores, ids = tsn.full_top_k(
        weights, biases, x, NUM_CLASSES, partition_strategy="div", chunk_size=37
    )
    want_scores, want_ids = tf.math.top_k(tf.constant(x @ w.T + b), NUM_CLASSES)
    np.testing.assert_array_equal(ids.numpy(), want_ids.numpy())
    np.testing.assert_array_equal(scores.numpy(), want_scores.numpy())


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(chunk_size=0),
            ValueError,
            "`chunk_size` must be an integer >= 1. Received: chunk_size=0",
        ),
        (
            dict(chunk_size=2.5),
            TypeError,
            "`chunk_size` must be a Python int. Received: chunk_size=2.5",
        ),
        (dict(num_classes=300), ValueError, "`weights` must have `num_classes` rows.*300"),
        (dict(num_true=0), ValueError, "`num_true` must be an integer >= 1"),
        (dict(partition_strategy="xyz"), ValueError, "`partition_strategy` must be"),
        (
            dict(labels=np.full([BATCH, 1], 2.5, np.float32)),
            ValueError,
            "`labels` given as floats must be whole-number class ids.*labels[0, 0] = 2.5",
        ),
        (
            dict(labels=np.full([BATCH, 1], "3")),
            TypeError,
            "`labels` must be integer class ids.*Received: labels.dtype=string",
        ),
        (dict(labels=np.zeros([BATCH, 2], np.int64)), ValueError, "`labels` must have shape"),
        (dict(inputs=np.zeros([BATCH, DIM], np.int32)), TypeError, "`inputs` must be a floating"),
        (
            dict(inputs=np.zeros([BATCH, DIM + 1], np.float32)),
            ValueError,
            "`inputs` must have the `weights` dim 8.*dim 9",
        ),
        (dict(biases=np.zeros([NUM_CLASSES - 1], np.float32)), ValueError, "`biases`"),
    ],
)
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_bad_arguments_raise_clear_errors(objective, kwargs, error, match):
    w, b, labels, x, _ = make_problem(1)
    args = dict(weights=w, biases=b, labels=labels, inputs=x, num_classes=NUM_CLASSES)
    args.update(kwargs)
    with pytest.raises(error, match=match.replace("[", r"\[")):
        LOSSES[objective](**args)


def test_out_of_range_labels_raise_invalid_argument():
    w, b, labels, x, _ = make_problem(1)
    labels[2, 0] = NUM_CLASSES
    with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must be class ids"):
        tsn.full_softmax_cross_entropy(w, b, labels, x, NUM_CLASSES)


def test_mismatched_bias_shards_raise():
    w, b, labels, x, _ = make_problem(1)
    with pytest.raises(ValueError, match="`biases` must have the shard sizes of `weights`"):
        tsn.full_softmax_cross_entropy(
            split(w, "div", 2), [b[:100], b[100:]], labels, x, NUM_CLASSES, partition_strategy="div"
        )


@pytest.mark.parametrize(
    "k, error, match",
    [
        (-1, tf.errors.InvalidArgumentError, "`k` must be non-negative: Need k >= 0, got -1"),
        (
            NUM_CLASSES + 1,
            tf.errors.InvalidArgumentError,
            "`k` must be <= num_classes: input must have at least k columns. Had 301, needed 302",
        ),
        (2.0, TypeError, "`k` must be a Python int or an integer scalar tensor, got 2.0"),
        (tf.constant(2.0), TypeError, "`k` must be .* got dtype float32"),
        (tf.constant([2]), tf.errors.InvalidArgumentError, "`k` must be scalar, got shape \\[1\\]"),
    ],
)
def test_top_k_bad_k(k, error, match):
    w, b, _, x, _ = make_problem(1)
    with pytest.raises(error, match=match):
        tsn.full_top_k(w, b, x, k)


# ---------------------------------------------------------------------------
# issue 22: what TensorFlow accepts, and the defects found with bad inputs

TENSOR = ("tensor", "mod", 1)
DIV4 = ("list", "div", 4)


def tf_full_reference(objective, w, b, labels, x, upstream):
    """TF's own ops on the materialized float32 logits: loss [n], dx, dw, db."""
    wt, bt, xt = tf.constant(w), tf.constant(b), tf.constant(x)
    targets = tf.reduce_sum(tf.one_hot(labels, NUM_CLASSES), 1) / labels.shape[1]
    with tf.GradientTape() as tape:
        tape.watch([wt, bt, xt])
        logits = tf.matmul(xt, wt, transpose_b=True) + bt
        if objective == "softmax":
            loss = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        else:
            per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
            loss = tf.reduce_sum(per_class, 1)
        total = tf.reduce_sum(loss * tf.constant(upstream, tf.float32))
    return (loss, *tape.gradient(total, [xt, wt, bt]))


BFLOAT16 = tf.bfloat16.as_numpy_dtype


@pytest.mark.parametrize(
    "dtype, mode",
    [(np.float32, "eager"), (np.float64, "eager"), (BFLOAT16, "eager"), (BFLOAT16, "function"),
     (BFLOAT16, "xla")],
)  # fmt: skip
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_whole_number_float_labels_are_cast(objective, dtype, mode):
    # TF's own bfloat16 test passes bfloat16 labels; TF casts them. Ids below
    # 256 are exact in bfloat16.
    w, b, labels, x, up = make_problem(2, seed=3)
    labels = labels % 256
    got = run_loss(objective, DIV4, w, b, labels.astype(dtype), x, up, 43, mode, num_true=2)
    assert_matches(got, numpy_reference(objective, w, b, labels, x, up))


@pytest.mark.parametrize("bad", [2.5, np.nan, -0.5, 2.0**70])
def test_non_whole_float_labels_are_an_error_naming_labels_and_the_value(bad):
    w, b, labels, x, _ = make_problem(1)
    labels = labels.astype(np.float32)
    labels[3, 0] = bad
    words = f"`labels` given as floats must be whole-number class ids.*= {float(labels[3, 0])!r}"
    # NumPy labels are known when the loss is built; a tensor only when it runs.
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("+", r"\+")):
        tsn.full_softmax_cross_entropy(w, b, labels, x, NUM_CLASSES)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`labels`.*whole-number"):
        tsn.full_softmax_cross_entropy(w, b, tf.constant(labels), x, NUM_CLASSES)
    traced = tf.function(lambda lab: tsn.full_sigmoid_cross_entropy(w, b, lab, x, NUM_CLASSES))
    quoted = "2.5" if bad == 2.5 else ""
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"`labels`.*whole-number.*{quoted}"):
        traced(tf.constant(labels))


@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_non_whole_float_label_under_xla_is_a_nan_row(objective):
    w, b, labels, x, up = make_problem(1)
    floats = labels.astype(np.float32)
    floats[1, 0] += 0.5
    compiled = tf.function(
        lambda lab: LOSSES[objective](w, b, lab, x, NUM_CLASSES, chunk_size=43), jit_compile=True
    )
    got = compiled(tf.constant(floats)).numpy()
    want = numpy_reference(objective, w, b, labels, x, up)[0]
    assert np.isnan(got[1])
    rows = [0, 2, 3, 4, 5]
    np.testing.assert_allclose(got[rows], want[rows], rtol=2e-5)


@pytest.mark.parametrize("layout, chunk", [(DIV4, 43), (TENSOR, None)], ids=["div4-43", "one-shot"])
@pytest.mark.parametrize("bad", [-1, NUM_CLASSES])
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_out_of_range_labels_under_xla_give_nan_rows(objective, bad, layout, chunk):
    # XLA drops the range assert; without a NaN the clamped lookups gave a
    # finite, plausible loss for the bad row (TF gives NaN, eagerly we raise).
    w, b, labels, x, up = make_problem(1, seed=2)
    bad_labels = labels.copy()
    bad_labels[2, 0] = bad
    loss, dx, dw, db = run_loss(objective, layout, w, b, bad_labels, x, up, chunk, "xla")
    ref_loss, ref_dx, _, _ = numpy_reference(objective, w, b, labels, x, up)
    good = [0, 1, 3, 4, 5]
    assert np.isnan(loss.numpy()[2])
    np.testing.assert_allclose(loss.numpy()[good], ref_loss[good], rtol=2e-5)
    # The NaN row reaches every gradient it touches: never a plausible step.
    assert np.isnan(dx.numpy()[2]).all()
    np.testing.assert_allclose(dx.numpy()[good], ref_dx[good], rtol=2e-5, atol=2e-5)
    assert np.isnan(dw).all() and np.isnan(db).all()


@pytest.mark.parametrize(
    "layout, chunk",
    [(TENSOR, 43), (TENSOR, 37), (TENSOR, None), (DIV4, 43), (("list", "mod", 3), 37)],
    ids=["43", "37", "one-shot", "div4-43", "mod3-37"],
)
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
@pytest.mark.parametrize("num_true", [1, 2])
def test_blocks_of_only_minus_inf_logits_stay_finite(objective, layout, chunk, num_true):
    # Reserved ids masked with a -inf bias: the first block (the whole first
    # shard with "div") holds only -inf logits. The running maximum started
    # at -inf, and -inf - -inf made every row NaN.
    w, b, labels, x, up = make_problem(num_true, seed=4)
    b[:60] = -np.inf
    labels = 60 + labels % (NUM_CLASSES - 60)
    got = run_loss(objective, layout, w, b, labels, x, up, chunk, num_true=num_true)
    want = numpy_reference(objective, w, b, labels, x, up)
    assert np.isfinite(got[0].numpy()).all()
    assert_matches(got, want)
    if objective == "softmax" and num_true == 1:
        # TF's sparse op on the full logits is finite too, with the same numbers.
        wt, bt, xt = tf.constant(w), tf.constant(b), tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch([xt, wt, bt])
            logits = tf.matmul(xt, wt, transpose_b=True) + bt
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 0], logits)
            total = tf.reduce_sum(loss * tf.constant(up, tf.float32))
        assert_matches(got, [np.asarray(t) for t in [loss, *tape.gradient(total, [xt, wt, bt])]])


@pytest.mark.parametrize("chunk", [43, None])
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_two_true_logits_at_flt_max(objective, chunk):
    # The exact loss is log 2 for the softmax (two equal top logits, each
    # target 1/2) and FLT_MAX / 2 + FLT_MAX / 2 + small = FLT_MAX for the
    # sigmoid; summing the true logits first gave -inf and NaN.
    w, b, _, x, up = make_problem(2, seed=6)
    w *= 1e-3
    flt_max = np.finfo(np.float32).max
    b[[5, 200]] = flt_max
    labels = np.tile([[5, 200]], (BATCH, 1))
    loss, dx, dw, db = run_loss(objective, TENSOR, w, b, labels, x, up, chunk, num_true=2)
    want = np.log(2.0) if objective == "softmax" else flt_max
    np.testing.assert_allclose(loss.numpy(), np.full(BATCH, want), rtol=1e-6)
    ref = tf_full_reference(objective, w, b, labels, x, up)
    for got, expected in zip((loss, dx, dw, db), ref, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [43, None])
@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_gradient_of_a_statically_empty_batch_in_a_function(objective, chunk):
    # The backward loop carried dx of shape (0, dim) in and (None, dim) out:
    # tf.while_loop refused it when the function was traced.
    w, b, _, _, _ = make_problem(1)
    weights, biases = tf.Variable(w), tf.Variable(b)
    x = tf.zeros([0, DIM])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = LOSSES[objective](
                weights, biases, tf.zeros([0, 1], tf.int64), x, NUM_CLASSES, chunk_size=chunk
            )
            total = tf.reduce_sum(loss)
        return loss, tape.gradient(total, [x, weights, biases])

    loss, (dx, dw, db) = step()
    assert loss.shape == [0] and dx.shape == [0, DIM]
    np.testing.assert_array_equal(dw.numpy(), np.zeros_like(w))
    np.testing.assert_array_equal(db.numpy(), np.zeros_like(b))


def _full_logits(w, b, x):
    return tf.constant(x.astype(np.float64) @ w.T.astype(np.float64) + b, tf.float32)


@pytest.mark.parametrize("layout", [TENSOR, ("list", "mod", 3)], ids=["tensor", "mod3"])
@pytest.mark.parametrize("k", [0, 1, 7, NUM_CLASSES])
def test_top_k_takes_a_scalar_tensor_k(k, layout):
    w, b, x = tie_problem(3)
    kind, strategy, shards = layout
    weights, biases = split(w, strategy, shards), split(b, strategy, shards)
    if shards == 1:
        weights, biases = weights[0], biases[0]
    want_scores, want_ids = tf.math.top_k(tf.constant(x @ w.T + b), k)
    results = [
        tsn.full_top_k(
            weights, biases, x, tf.constant(k), partition_strategy=strategy, chunk_size=37
        ),
        tsn.full_top_k(
            weights, biases, x, tf.constant(k, tf.int64), partition_strategy=strategy, chunk_size=37
        ),
        tsn.full_top_k(weights, biases, x, k, partition_strategy=strategy, chunk_size=37),
    ]
    # A k known only when the function runs.
    dynamic = tf.function(
        lambda kk: tsn.full_top_k(
            weights, biases, x, kk, partition_strategy=strategy, chunk_size=37
        ),
        input_signature=[tf.TensorSpec([], tf.int32)],
    )
    results.append(dynamic(tf.constant(k)))
    for scores, ids in results:
        assert scores.shape == [BATCH, k] and ids.dtype == tf.int64
        np.testing.assert_array_equal(ids.numpy(), want_ids.numpy())
        np.testing.assert_array_equal(scores.numpy(), want_scores.numpy())


def _k_cases():
    w, b, _, x, _ = make_problem(1)
    return w, b, x, _full_logits(w, b, x)


@pytest.mark.parametrize(
    "k, tf_words",
    [
        (-7, "Need k >= 0, got -7|non-negative"),
        (NUM_CLASSES + 1, "must have last dimension >= k = 302|must have at least k"),
    ],
)
@pytest.mark.parametrize(
    "context", ["eager-int", "eager-tensor", "function-int", "function-tensor"]
)
def test_bad_k_raises_the_class_and_words_of_tf_math_top_k(context, k, tf_words):
    """The regexes are TF's own topk_op_test ones; the class is what tf.math.top_k raises here."""
    w, b, x, logits = _k_cases()
    if context.startswith("eager"):
        value = k if context == "eager-int" else tf.constant(k)
        calls = [lambda f: f(value)]
    elif context == "function-int":
        calls = [lambda f: tf.function(lambda: f(k))()]
    else:
        calls = [
            lambda f: tf.function(lambda kk: f(kk), input_signature=[tf.TensorSpec([], tf.int32)])(
                tf.constant(k)
            )
        ]
    for call in calls:
        with pytest.raises(Exception) as theirs:
            call(lambda kk: tf.math.top_k(logits, kk))
        with pytest.raises(type(theirs.value), match=tf_words) as ours:
            call(lambda kk: tsn.full_top_k(w, b, x, kk, chunk_size=43))
        assert "`k`" in str(ours.value) and str(k) in str(ours.value)
