"""Known positive sets in the in-batch softmax (issue 26): every listed id leaves the row's negatives.

``nn.in_batch_softmax_loss(..., known_positive_ids=...)`` and the Keras layer
against a NumPy reference computed one row at a time (softmax cross-entropy
over the columns each row keeps), forward and gradient.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import nn
from tf_sampling.layers import InBatchSoftmaxRetrieval

B, M, D, K = 6, 3, 4, 4
PAD = -1
CANDIDATE_IDS = np.array([10, 11, 10, 12, 13, 14])  # rows 0 and 2: an accidental hit
EXTRA_IDS = np.array([15, 11, 16])
# n_i from 0 to K: ids of other in-batch candidates, of extra negatives, ids
# no column has, and row 3's own positive (12, whose column is kept).
KNOWN = [[11], [10, 13, 99], [], [12, 14, 15, 16], [11, 14], [13]]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, D)).astype(np.float32)
    c = rng.normal(size=(B, D)).astype(np.float32)
    extra = rng.normal(size=(M, D)).astype(np.float32)
    return q, c, extra


def _padded(known=KNOWN, fill=PAD):
    return np.array([row + [fill] * (K - len(row)) for row in known], np.int64)


def _reference(q, c, ids, known, extra=None, extra_ids=None, extra_mask=None, temperature=1.0):
    """Loss, dq, dc, dextra: each row a softmax over the columns it keeps, by the definition."""
    q = np.asarray(q, np.float64)
    cols = np.asarray(c, np.float64)
    col_ids = list(ids)
    if extra is not None:
        cols = np.concatenate([cols, np.asarray(extra, np.float64)])
        col_ids += list(extra_ids)
    z = q @ cols.T / temperature
    loss = np.zeros(len(q))
    dz = np.zeros_like(z)
    for i in range(len(q)):
        keep = []
        for j in range(len(cols)):
            dropped = col_ids[j] == col_ids[i] or col_ids[j] in known[i]
            if extra_mask is not None and j >= len(q) and not extra_mask[j - len(q)]:
                dropped = True
            if j == i or not dropped:
                keep.append(j)
        zk = z[i, keep]
        top = zk.max()
        loss[i] = top + np.log(np.exp(zk - top).sum()) - z[i, i]
        dz[i, keep] = np.exp(zk - top) / np.exp(zk - top).sum()
        dz[i, i] -= 1.0
    dq = dz @ cols / temperature
    dcols = dz.T @ q / temperature
    return loss, dq, dcols[: len(q)], dcols[len(q) :]


def _loss_and_grads(q, c, extra=None, **kwargs):
    q, c = tf.constant(q), tf.constant(c)
    watched = [q, c] + ([] if extra is None else [tf.constant(extra)])

    with tf.GradientTape() as tape:
        tape.watch(watched)
        args = {} if extra is None else {"extra_negative_embeddings": watched[2]}
        loss = nn.in_batch_softmax_loss(q, c, **args, **kwargs)
        total = tf.reduce_sum(loss)
    return [t.numpy() for t in (loss, *tape.gradient(total, watched))]


def _known_forms():
    padded = _padded()
    # The mask form's padded slots hold real column ids: they must match nothing.
    garbage = _padded(fill=10)
    return {
        "ragged": tf.ragged.constant(KNOWN, dtype=tf.int64),
        "padded": nn.label_set(padded, padding_id=PAD),
        "mask": nn.label_set(garbage, mask=padded != PAD),
        "padded_and_mask": nn.label_set(padded, padding_id=PAD, mask=np.ones_like(padded)),
    }


@pytest.mark.parametrize("form", ["ragged", "padded", "mask", "padded_and_mask"])
def test_each_form_equals_the_reference_forward_and_gradient(form):
    q, c, extra = _data()
    got = _loss_and_grads(
        q, c, extra, candidate_ids=CANDIDATE_IDS, extra_negative_ids=EXTRA_IDS,
        known_positive_ids=_known_forms()[form], temperature=0.5,
    )  # fmt: skip
    want = _reference(q, c, CANDIDATE_IDS, KNOWN, extra, EXTRA_IDS, temperature=0.5)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # The sets change the loss: a loss ignoring them fails the comparison.
    plain = _reference(q, c, CANDIDATE_IDS, [[]] * B, extra, EXTRA_IDS, temperature=0.5)[0]
    assert np.abs(plain - want[0]).max() > 1e-2


def test_in_batch_only_with_dense_full_rows_and_int32_ids():
    q, c, _ = _data(1)
    known = [[11, 12], [10, 13], [14, 10], [12, 99], [11, 11], [13, 10]]  # every slot real
    got = _loss_and_grads(
        q, c, candidate_ids=CANDIDATE_IDS.astype(np.int32),
        known_positive_ids=np.array(known, np.int32),
    )  # fmt: skip
    want = _reference(q, c, CANDIDATE_IDS, known)
    for g, w in zip(got[:3], want[:3], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_every_id_listed_keeps_only_the_diagonal():
    q, c, extra = _data(2)
    everything = list(CANDIDATE_IDS) + list(EXTRA_IDS)
    loss, dq, dc, dextra = _loss_and_grads(
        q, c, extra, candidate_ids=CANDIDATE_IDS, extra_negative_ids=EXTRA_IDS,
        known_positive_ids=np.tile(everything, (B, 1)),
    )  # fmt: skip
    # One kept column per row: log-softmax of the diagonal alone is exactly 0.
    np.testing.assert_array_equal(loss, np.zeros(B, np.float32))
    for grad in (dq, dc, dextra):
        np.testing.assert_array_equal(grad, np.zeros_like(grad))


def test_an_all_padding_row_masks_nothing_extra_and_is_no_error():
    q, c, extra = _data(3)
    common = dict(candidate_ids=CANDIDATE_IDS, extra_negative_ids=EXTRA_IDS)
    without = _loss_and_grads(q, c, extra, **common)
    # allow_empty is not consulted: an empty set is no error here.
    empty = nn.label_set(np.full((B, K), PAD), padding_id=PAD)
    got = _loss_and_grads(q, c, extra, known_positive_ids=empty, **common)
    for g, w in zip(got, without, strict=True):
        np.testing.assert_array_equal(g, w)
    ragged_empty = tf.ragged.constant([[]] * B, dtype=tf.int64, ragged_rank=1)
    got = _loss_and_grads(q, c, extra, known_positive_ids=ragged_empty, **common)
    for g, w in zip(got, without, strict=True):
        np.testing.assert_array_equal(g, w)


def test_with_query_ids_and_memory_mask():
    q, c, extra = _data(4)
    qids = np.array([0, 1, 0, 2, 3, 1])
    keep = np.array([True, False, True])
    got = _loss_and_grads(
        q, c, extra, candidate_ids=CANDIDATE_IDS, extra_negative_ids=EXTRA_IDS, query_ids=qids,
        extra_negative_mask=keep, known_positive_ids=tf.ragged.constant(KNOWN, tf.int64),
    )  # fmt: skip
    # Query 0 (rows 0, 2) and query 1 (rows 1, 5) also drop each other's in-batch items.
    known = [list(k) for k in KNOWN]
    for i in range(B):
        known[i] += [CANDIDATE_IDS[j] for j in range(B) if qids[j] == qids[i]]
    want = _reference(q, c, CANDIDATE_IDS, known, extra, EXTRA_IDS, extra_mask=keep)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_jit_compile_equals_eager_and_the_reference():
    q, c, extra = _data(5)
    padded = _padded()
    garbage = _padded(fill=10)  # padded slots holding a column's id, masked out

    @tf.function(jit_compile=True)
    def step(q, c, extra, padded, garbage, real):
        with tf.GradientTape() as tape:
            tape.watch([q, c, extra])
            losses = [
                nn.in_batch_softmax_loss(
                    q,
                    c,
                    candidate_ids=tf.constant(CANDIDATE_IDS, tf.int32),
                    extra_negative_embeddings=extra,
                    extra_negative_ids=tf.constant(EXTRA_IDS),
                    known_positive_ids=known,
                )  # fmt: skip
                for known in (
                    nn.label_set(padded, padding_id=PAD),
                    nn.label_set(garbage, mask=real),
                )
            ]
            total = tf.reduce_sum(losses[0]) + 2.0 * tf.reduce_sum(losses[1])
        return (*losses, *tape.gradient(total, [q, c, extra]))

    got = [t.numpy() for t in step(q, c, extra, padded, garbage, padded != PAD)]
    eager = _loss_and_grads(
        q, c, extra, candidate_ids=CANDIDATE_IDS, extra_negative_ids=EXTRA_IDS,
        known_positive_ids=nn.label_set(padded, padding_id=PAD),
    )  # fmt: skip
    want = [eager[0], eager[0], *(3.0 * g for g in eager[1:])]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        eager[0], _reference(q, c, CANDIDATE_IDS, KNOWN, extra, EXTRA_IDS)[0], rtol=1e-5
    )


def test_ragged_in_a_graph_with_unknown_width():
    q, c, _ = _data(6)
    spec = tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1)

    @tf.function(input_signature=[tf.TensorSpec([None, D]), tf.TensorSpec([None, D]), spec])
    def loss(q, c, known):
        return nn.in_batch_softmax_loss(
            q, c, candidate_ids=tf.constant(CANDIDATE_IDS), known_positive_ids=known
        )

    got = loss(q, c, tf.ragged.constant(KNOWN, tf.int64)).numpy()
    want = _reference(q, c, CANDIDATE_IDS, KNOWN)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bad_inputs_name_the_argument():
    q, c, extra = _data()
    ids = CANDIDATE_IDS
    with pytest.raises(ValueError, match=r"known_positive_ids.*candidate_ids=None"):
        nn.in_batch_softmax_loss(q, c, known_positive_ids=_padded())
    with pytest.raises(ValueError, match=r"known_positive_ids.*one row per query: 6.*\(5, 4\)"):
        nn.in_batch_softmax_loss(q, c, candidate_ids=ids, known_positive_ids=_padded()[:5])
    with pytest.raises(ValueError, match=r"known_positive_ids.*\[B, K\].*\(6,\)"):
        nn.in_batch_softmax_loss(q, c, candidate_ids=ids, known_positive_ids=ids)
    with pytest.raises(TypeError, match=r"known_positive_ids.*integer.*float32"):
        nn.in_batch_softmax_loss(
            q, c, candidate_ids=ids, known_positive_ids=_padded().astype(np.float32)
        )
    with pytest.raises(TypeError, match=r"known_positive_ids.*integer.*string"):
        nn.in_batch_softmax_loss(
            q, c, candidate_ids=ids, known_positive_ids=tf.ragged.constant([["a"]] * B)
        )
    with pytest.raises(TypeError, match=r"known_positive_ids.*integer `candidate_ids`"):
        nn.in_batch_softmax_loss(
            q, c, candidate_ids=[str(i) for i in ids], known_positive_ids=_padded()
        )
    with pytest.raises(ValueError, match=r"known_positive_ids.*ragged_rank 2"):
        nested = tf.RaggedTensor.from_row_lengths(
            tf.ragged.constant([[1], [2, 3]] * B, tf.int64), [2] * B
        )
        nn.in_batch_softmax_loss(q, c, candidate_ids=ids, known_positive_ids=nested)
    # The padding id is a column's id: a real id could not be listed.
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"padding_id=16 is the id of a column"
    ):
        nn.in_batch_softmax_loss(
            q, c, candidate_ids=ids, extra_negative_embeddings=extra,
            extra_negative_ids=EXTRA_IDS, known_positive_ids=nn.label_set(_padded(), padding_id=16),
        )  # fmt: skip

    @tf.function(
        input_signature=[tf.TensorSpec([None, K], tf.int64), tf.TensorSpec([None], tf.int64)]
    )
    def dynamic(known, ids):
        return nn.in_batch_softmax_loss(q, c, candidate_ids=ids, known_positive_ids=known)

    with pytest.raises(tf.errors.InvalidArgumentError, match="one row per query"):
        dynamic(_padded()[:5], ids)


# ----------------------------------------------------------------------------
# The Keras layer.


def test_layer_mixed_negatives_and_memory_equal_the_functional_loss():
    layer = InBatchSoftmaxRetrieval(memory_size=B, embedding_dim=D, padding_id=PAD)
    padded = _padded()
    q1, c1, extra = _data(7)
    q2, c2, _ = _data(8)
    ids2 = CANDIDATE_IDS + 1
    common = dict(extra_negative_embeddings=extra, extra_negative_ids=EXTRA_IDS, training=True)
    got1 = layer(q1, c1, candidate_ids=CANDIDATE_IDS, known_positive_ids=padded, **common)
    got2 = layer(q2, c2, candidate_ids=ids2, known_positive_ids=padded, **common)
    # Step 1: the memory is empty; step 2: it holds step 1's candidates, after the mixed ones.
    want1 = _reference(
        q1, c1, CANDIDATE_IDS, KNOWN, np.concatenate([extra, c1]),
        np.concatenate([EXTRA_IDS, CANDIDATE_IDS]), extra_mask=[True] * M + [False] * B,
    )[0]  # fmt: skip
    want2 = _reference(
        q2, c2, ids2, KNOWN, np.concatenate([extra, c1]), np.concatenate([EXTRA_IDS, CANDIDATE_IDS])
    )[0]
    np.testing.assert_allclose(got1.numpy(), want1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got2.numpy(), want2, rtol=1e-5, atol=1e-6)


def test_layer_memory_with_padding_id_zero_equals_the_reference():
    # An unfilled memory slot's id is 0: with padding_id=0 it must not count as a column's id.
    layer = InBatchSoftmaxRetrieval(memory_size=B + 2, embedding_dim=D, padding_id=0)
    padded = _padded(fill=0)
    (q1, c1, _), (q2, c2, _) = _data(10), _data(11)
    got1 = layer(q1, c1, candidate_ids=CANDIDATE_IDS, known_positive_ids=padded, training=True)
    got2 = layer(q2, c2, candidate_ids=CANDIDATE_IDS, known_positive_ids=padded, training=True)
    want1 = _reference(q1, c1, CANDIDATE_IDS, KNOWN)[0]
    want2 = _reference(
        q2, c2, CANDIDATE_IDS, KNOWN, np.concatenate([c1, c1[:2]]),
        np.concatenate([CANDIDATE_IDS, CANDIDATE_IDS[:2]]), extra_mask=[True] * B + [False] * 2,
    )[0]  # fmt: skip
    np.testing.assert_allclose(got1.numpy(), want1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got2.numpy(), want2, rtol=1e-5, atol=1e-6)


def test_layer_string_ids_mask_as_their_integer_twins():
    q, c, _ = _data(9)
    names = np.array([f"item{i}" for i in CANDIDATE_IDS])
    known_names = tf.ragged.constant([[f"item{i}" for i in row] for row in KNOWN], tf.string)
    layer = InBatchSoftmaxRetrieval()
    got = layer(q, c, candidate_ids=names, known_positive_ids=known_names)
    want = _reference(q, c, CANDIDATE_IDS, KNOWN)[0]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"known_positive_ids.*padding_id=-1"):
        InBatchSoftmaxRetrieval(padding_id=PAD)(
            q, c, candidate_ids=names, known_positive_ids=known_names.to_tensor("")
        )
    with pytest.raises(ValueError, match="remove_accidental_hits=False"):
        InBatchSoftmaxRetrieval(remove_accidental_hits=False)(
            q, c, candidate_ids=CANDIDATE_IDS, known_positive_ids=_padded()
        )
    with pytest.raises(TypeError, match="padding_id"):
        InBatchSoftmaxRetrieval(padding_id="-1")


def test_keras_fit_with_padded_known_positives_trains_and_saves(tmp_path):
    users, items, n = 12, 20, 96
    rng = np.random.default_rng(0)
    user_ids = rng.integers(0, users, n)
    item_ids = rng.integers(0, items, n)
    # Each user's known positives: its pairs' items (up to K), padded with -1.
    sets = {u: list(dict.fromkeys(item_ids[user_ids == u]))[:K] for u in range(users)}
    known = np.array([sets[u] + [PAD] * (K - len(sets[u])) for u in user_ids], np.int64)

    keras.utils.set_random_seed(0)
    user = keras.Input((), dtype="int64", name="user")
    item = keras.Input((), dtype="int64", name="item")
    positives = keras.Input((K,), dtype="int64", name="known")
    init = keras.initializers.RandomNormal(stddev=0.5)
    q = keras.layers.Embedding(users, 8, embeddings_initializer=init, name="users")(user)
    c = keras.layers.Embedding(items, 8, embeddings_initializer=init, name="items")(item)
    loss = InBatchSoftmaxRetrieval(padding_id=PAD, reduction="mean", name="retrieval")(
        q, c, candidate_ids=item, known_positive_ids=positives
    )
    model = keras.Model({"user": user, "item": item, "known": positives}, loss)
    model.compile(optimizer=keras.optimizers.Adagrad(0.5), jit_compile=True)
    data = {"user": user_ids, "item": item_ids, "known": known}
    history = model.fit(data, batch_size=32, epochs=6, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses

    layer = model.get_layer("retrieval")
    assert layer.get_config()["padding_id"] == PAD
    assert InBatchSoftmaxRetrieval.from_config(layer.get_config()).padding_id == PAD
    path = str(tmp_path / "known.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.get_layer("retrieval").padding_id == PAD
    batch = {k: v[:32] for k, v in data.items()}
    got = model(batch).numpy()
    np.testing.assert_allclose(restored(batch).numpy(), got, rtol=1e-6)
    # The model's loss is the functional one with the users' sets.
    want = nn.in_batch_softmax_loss(
        model.get_layer("users")(batch["user"]), model.get_layer("items")(batch["item"]),
        candidate_ids=batch["item"], known_positive_ids=nn.label_set(batch["known"], padding_id=PAD),
    )  # fmt: skip
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    unmasked = nn.in_batch_softmax_loss(
        model.get_layer("users")(batch["user"]), model.get_layer("items")(batch["item"]),
        candidate_ids=batch["item"],
    )  # fmt: skip
    assert np.abs(unmasked.numpy() - got).max() > 1e-3


def test_a_masked_extra_negative_may_hold_the_padding_id():
    # Extra negative 1 is left out of every row (an unfilled memory slot, say):
    # its id may be the padding id; the same id on a kept column is an error.
    q, c, extra = _data(8)
    keep = np.array([True, False, True])
    extra_ids = np.array([15, PAD, 16])
    got = _loss_and_grads(
        q, c, extra, candidate_ids=CANDIDATE_IDS, extra_negative_ids=extra_ids,
        extra_negative_mask=keep, known_positive_ids=nn.label_set(_padded(), padding_id=PAD),
    )  # fmt: skip
    want = _reference(q, c, CANDIDATE_IDS, KNOWN, extra, extra_ids, extra_mask=keep)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="padding_id=-1 is the id of a column"):
        _loss_and_grads(
            q, c, extra, candidate_ids=CANDIDATE_IDS, extra_negative_ids=extra_ids,
            known_positive_ids=nn.label_set(_padded(), padding_id=PAD),
        )  # fmt: skip
