"""Sharded weights: lists, PartitionedVariable and ShardedVariable under "mod" and "div"."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tests import loss_harness, numpy_reference
from tests.test_nn_parity import BATCH, NUM_CLASSES, NUM_SAMPLED, make_problem
from tf_sampling._core.full_logits import full_logits
from tf_sampling._core.sharding import (
    ShardLayout,
    as_sharded_table,
    gather_rows,
    shard_class_ids,
)

ShardedVariable = tf.__internal__.distribute.ShardedVariable


def split(table, strategy, num_shards=None, sizes=None):
    """Shards of ``table`` laid out as ``strategy`` expects (sizes only for "div")."""
    if strategy == "mod":
        return [table[p::num_shards] for p in range(num_shards)]
    sizes = sizes or [len(r) for r in np.array_split(np.arange(len(table)), num_shards)]
    return np.split(table, np.cumsum(sizes)[:-1])


def merge_grads(shard_grads, strategy, num_classes):
    """Inverse of ``split`` for gradients: back to class order."""
    if strategy == "div":
        return np.concatenate(shard_grads)
    n = len(shard_grads)
    out = np.zeros((num_classes,) + shard_grads[0].shape[1:], shard_grads[0].dtype)
    for p, g in enumerate(shard_grads):
        out[p::n] = g
    return out


@pytest.mark.parametrize("mode", loss_harness.MODES)
@pytest.mark.parametrize("num_shards", [1, 3, 7])  # 40 classes: 7 shards are uneven
@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
def test_list_of_shards_matches_builtin_and_logical_table(name, strategy, num_shards, mode):
    w, b, labels, x, sv, ct = make_problem(2, True)
    kwargs = dict(
        num_sampled=NUM_SAMPLED,
        num_classes=NUM_CLASSES,
        num_true=2,
        remove_accidental_hits=True,
        partition_strategy=strategy,
    )
    ws, bs = split(w, strategy, num_shards), split(b, strategy, num_shards)
    ours = loss_harness.run(getattr(tsn, name), mode, ws, bs, labels, x, ct, sv, **kwargs)
    builtin = loss_harness.run(
        getattr(tf.compat.v1.nn, name), mode, ws, bs, labels, x, ct, sv, **kwargs
    )
    np.testing.assert_allclose(ours.loss, builtin.loss, rtol=1e-5, atol=1e-5)
    for a, c in zip(
        ours.grad_weights + ours.grad_biases,
        builtin.grad_weights + builtin.grad_biases,
        strict=True,
    ):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
    assert set(ours.weight_grad_types) == {"IndexedSlices"}

    kind = "softmax" if name == "sampled_softmax_loss" else "nce"
    loss, dw, db, _ = numpy_reference.sampled_loss(kind, w, b, labels, x, sv, True, ct)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        merge_grads(ours.grad_weights, strategy, NUM_CLASSES), dw, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        merge_grads(ours.grad_biases, strategy, NUM_CLASSES), db, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_div_accepts_any_consecutive_shard_sizes(mode):
    """ "div" maps class ids onto the concatenation, even for sizes TF's formula would not produce."""
    w, b, labels, x, sv, ct = make_problem(1, True)
    sizes = [3, 25, 12]
    ours = loss_harness.run(
        tsn.sampled_softmax_loss,
        mode,
        split(w, "div", sizes=sizes),
        split(b, "div", sizes=sizes),
        labels,
        x,
        ct,
        sv,
        num_sampled=NUM_SAMPLED,
        num_classes=NUM_CLASSES,
        partition_strategy="div",
    )
    loss, dw, _, dx = numpy_reference.sampled_loss("softmax", w, b, labels, x, sv, True, ct)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(ours.grad_weights), dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_partitioned_variable_in_tf1_graph_matches_builtin(strategy):
    w, b, labels, x, sv, _ = make_problem(1, True)

    def run(fn):
        with tf.Graph().as_default():
            partitioner = tf.compat.v1.fixed_size_partitioner(3)
            wv = tf.compat.v1.get_variable("w", shape=w.shape, partitioner=partitioner)
            bv = tf.compat.v1.get_variable("b", shape=b.shape, partitioner=partitioner)
            assert type(wv).__name__ == "PartitionedVariable"
            # The partitioner splits into consecutive ranges; fill each shard.
            sizes = [int(v.shape[0]) for v in wv]
            assigns = [
                v.assign(part)
                for pv, full in ((wv, w), (bv, b))
                for v, part in zip(pv, split(full, "div", sizes=sizes), strict=True)
            ]
            loss = fn(
                wv,
                bv,
                labels,
                x,
                NUM_SAMPLED,
                NUM_CLASSES,
                sampled_values=sv,
                partition_strategy=strategy,
            )
            grads = tf.compat.v1.gradients(tf.reduce_sum(loss), list(wv))
            assert all(isinstance(g, tf.IndexedSlices) for g in grads)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                sess.run(assigns)
                return sess.run([loss] + [tf.convert_to_tensor(g) for g in grads])

    for a, c in zip(
        run(tsn.sampled_softmax_loss), run(tf.compat.v1.nn.sampled_softmax_loss), strict=True
    ):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_sharded_variable_is_one_logical_table_in_eager_and_function(strategy):
    """Row i of a ShardedVariable is class i under either strategy, eagerly and traced alike."""
    w, b, labels, x, sv, ct = make_problem(1, True)
    sizes = [14, 13, 13]
    wrap = ShardedVariable
    kwargs = dict(num_sampled=NUM_SAMPLED, num_classes=NUM_CLASSES, partition_strategy=strategy)
    ws, bs = split(w, "div", sizes=sizes), split(b, "div", sizes=sizes)
    eager = loss_harness.run(
        tsn.sampled_softmax_loss, "eager", ws, bs, labels, x, ct, sv, wrap=wrap, **kwargs
    )
    traced = loss_harness.run(
        tsn.sampled_softmax_loss, "function", ws, bs, labels, x, ct, sv, wrap=wrap, **kwargs
    )
    loss, dw, _, _ = numpy_reference.sampled_loss("softmax", w, b, labels, x, sv, True, ct)
    for result in (eager, traced):
        np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.concatenate(result.grad_weights), dw, rtol=1e-5, atol=1e-5)
        assert set(result.weight_grad_types) == {"IndexedSlices"}


@pytest.mark.parametrize("num_shards", [1, 3, 6])
@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_gather_rows_equals_v1_embedding_lookup(strategy, num_shards):
    rng = np.random.default_rng(1)
    table = rng.normal(size=(NUM_CLASSES, 4)).astype(np.float32)
    shards = [tf.constant(s) for s in split(table, strategy, num_shards)]
    ids = tf.constant(rng.integers(0, NUM_CLASSES, size=30), tf.int64)
    ours = gather_rows(shards, ids, strategy)
    theirs = tf.compat.v1.nn.embedding_lookup(shards, ids, partition_strategy=strategy)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.numpy(), table[ids.numpy()])


@pytest.mark.parametrize("num_shards", [1, 3, 7])
@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_full_logits_are_in_class_order(strategy, num_shards):
    w, b, _, x, _, _ = make_problem(1, True)
    logits = full_logits(
        split(w, strategy, num_shards), split(b, strategy, num_shards), x, strategy
    )
    np.testing.assert_allclose(logits.numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)
    seq = full_logits(w, b, np.stack([x, x]), strategy)
    assert seq.shape == (2, BATCH, NUM_CLASSES)
    np.testing.assert_allclose(seq.numpy()[1], x @ w.T + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "wrap_name,strategy,mode",
    [("list", s, m) for s in ("mod", "div") for m in loss_harness.MODES]
    # A ShardedVariable is a TF2 object: eager and tf.function only.
    + [("sharded_variable", s, m) for s in ("mod", "div") for m in ("eager", "function")],
)
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "nce_loss"])
def test_sharded_tables_with_broadcast_expected_counts(name, wrap_name, strategy, mode):
    """[batch, 1] true counts with num_true=3 (as TF's tests pass them) on every shard layout."""
    w, b, labels, x, sv, ct = make_problem(3, True)
    sv = (sv[0], sv[1][:, :1], sv[2])
    layout = "div" if wrap_name == "sharded_variable" else strategy
    ws, bs = split(w, layout, num_shards=3), split(b, layout, num_shards=3)
    wrap = ShardedVariable if wrap_name == "sharded_variable" else None
    kwargs = dict(
        num_sampled=NUM_SAMPLED,
        num_classes=NUM_CLASSES,
        num_true=3,
        partition_strategy=strategy,
        remove_accidental_hits=True,
    )
    ours = loss_harness.run(
        getattr(tsn, name), mode, ws, bs, labels, x, ct, sv, wrap=wrap, **kwargs
    )
    kind = "softmax" if name == "sampled_softmax_loss" else "nce"
    loss, dw, db, dx = numpy_reference.sampled_loss(kind, w, b, labels, x, sv, True, ct)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        merge_grads(ours.grad_weights, layout, NUM_CLASSES), dw, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        merge_grads(ours.grad_biases, layout, NUM_CLASSES), db, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(ours.grad_inputs, dx, rtol=1e-5, atol=1e-5)
    if wrap_name == "list":
        builtin = loss_harness.run(
            getattr(tf.compat.v1.nn, name), mode, ws, bs, labels, x, ct, sv, **kwargs
        )
        np.testing.assert_allclose(ours.loss, builtin.loss, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_rank_loss_sharded_variable_with_broadcast_counts(strategy):
    w, b, labels, x, sv, _ = make_problem(2, True)
    sv = (sv[0], 0.5, sv[2])  # one true count for every example and class
    ws = ShardedVariable([tf.Variable(s) for s in split(w, "div", num_shards=3)])
    bs = ShardedVariable([tf.Variable(s) for s in split(b, "div", num_shards=3)])
    loss = tsn.rank_sampled_softmax_loss(
        ws, bs, labels, x, NUM_SAMPLED, 4, NUM_CLASSES, 2, sv, 0.7, True, strategy
    )
    resampled = numpy_reference.rank_resampled_values(w, b, x, sv, 4, 0.7)
    expected = numpy_reference.sampled_loss(
        "softmax", w, b, labels, x, resampled, True, np.ones(len(x))
    )[0]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "layout",
    [
        ShardLayout((40,), False),
        ShardLayout((14, 13, 13), False),  # "mod", 40 classes in 3 shards
        ShardLayout((14, 13, 13), True),  # "div"
        ShardLayout((5, 30, 1, 4), True),  # a ShardedVariable's uneven ranges
    ],
)
def test_layout_locates_every_class_and_inverts(layout):
    # Where each class lives, by brute force over the shards' class lists.
    where = {
        int(c): (k, j) for k, ids in enumerate(layout.shard_class_ids()) for j, c in enumerate(ids)
    }
    assert sorted(where) == list(range(40))
    ids = np.array([[c, 39 - c] for c in range(40)], np.int64)  # rank 2, as labels are
    for value in (ids, ids[:, 0]):  # and rank 1, as a gather's ids are
        shard, row = layout.locate(tf.constant(value))
        assert shard.dtype == tf.int32 and row.dtype == tf.int64
        np.testing.assert_array_equal(shard.numpy(), np.vectorize(lambda c: where[c][0])(value))
        np.testing.assert_array_equal(row.numpy(), np.vectorize(lambda c: where[c][1])(value))
    for k, size in enumerate(layout.sizes):
        rows = np.arange(size)
        np.testing.assert_array_equal(
            layout.class_ids(k, tf.constant(rows)).numpy(),
            [c for c in range(40) if where[c][0] == k],
        )


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_shard_class_ids_follow_v1_embedding_lookup(strategy):
    table = np.arange(40, dtype=np.float32)[:, None]
    shards = split(table, strategy, num_shards=3)
    for k, ids in enumerate(shard_class_ids(40, 3, strategy)):
        np.testing.assert_array_equal(shards[k][:, 0], ids)
        looked_up = tf.compat.v1.nn.embedding_lookup(shards, ids, partition_strategy=strategy)
        np.testing.assert_array_equal(looked_up.numpy()[:, 0], ids)


@pytest.mark.parametrize(
    "function", [tsn.full_softmax_cross_entropy, tsn.full_sigmoid_cross_entropy, "full_logits"]
)
def test_full_paths_refuse_biases_laid_out_unlike_weights(function):
    # Same shard sizes, but a ShardedVariable holds class ranges and a "mod"
    # list interleaves them: row j of shard k is not the same class in both.
    w, b, labels, x, _, _ = make_problem(1, True)
    ws = ShardedVariable([tf.Variable(s) for s in split(w, "div", num_shards=2)])
    bs = split(b, "mod", num_shards=2)
    with pytest.raises(ValueError, match="`biases` must hold its classes in its shards as"):
        if function == "full_logits":
            full_logits(ws, bs, x, "mod")
        else:
            function(ws, bs, labels, x, NUM_CLASSES, partition_strategy="mod")


def test_keras_variable_shards_are_read_as_their_tf_variable():
    # Recognised without importing Keras in _core: the tf.Variable it holds is
    # gathered (sparse reads and gradients), never a dense copy of the table.
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    whole, first, second = (keras.Variable(t) for t in (table, table[0::2], table[1::2]))
    assert as_sharded_table(whole, "mod").shards[0] is whole.value
    shards = as_sharded_table([first, second], "mod").shards
    assert shards[0] is first.value and shards[1] is second.value
    with tf.GradientTape() as tape:
        rows = gather_rows([first, second], tf.constant([5, 2, 5]), "mod")
    np.testing.assert_array_equal(rows.numpy(), table[[5, 2, 5]])
    grads = tape.gradient(rows, [first.value, second.value])
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
