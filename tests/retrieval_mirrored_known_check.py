"""Known positive sets under MirroredStrategy (2 logical CPUs, global negatives); prints one JSON line.

Run as a script by ``tests/test_retrieval_keras.py`` (the logical devices must
be configured before TensorFlow initializes). ``InBatchSoftmaxRetrieval`` with
``global_negatives=True``, ``known_positive_ids`` ``[B, K]`` padded with the
layer's ``padding_id`` (0: also the id of an unfilled memory slot), hit and
same-query masking, the logQ correction and a memory, trained by SGD for two
steps (the second reads the memory the first wrote), three ways:

* two replicas, each with its half of the batch and its rows' known sets;
* one device with the whole batch;
* ``nn.in_batch_softmax_loss`` on the whole batch with the same sets (as a
  ``label_set``), the memory's filled rows as extra negatives and the
  probabilities of an estimator fed the same ids.

Sets hold ids that only the other replica's candidates have (step 1) and ids
only the memory has (step 2): without those entries the losses differ by
``cross_known_effect`` and ``memory_known_effect``, so a layer that missed
them would fail. Ragged per-replica sets are checked against padded ones.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tf_sampling import nn  # noqa: E402
from tf_sampling.layers import InBatchSoftmaxRetrieval, StreamingFrequencyEstimator  # noqa: E402

NUM_USERS, NUM_ITEMS, DIM, LOCAL, K, PAD = 7, 12, 4, 5, 4, 0
MEMORY, TEMPERATURE, LR, BUCKETS, ALPHA = 6, 0.7, 0.3, 32, 0.3
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(1)
STEPS = [
    (rng.integers(0, NUM_USERS, 2 * LOCAL), rng.integers(1, NUM_ITEMS, 2 * LOCAL)) for _ in range(2)
]  # item 0 is the padding id: an unfilled memory slot's id too
USER_TABLE = rng.normal(size=(NUM_USERS, DIM)).astype(np.float32)
ITEM_TABLE = rng.normal(size=(NUM_ITEMS, DIM)).astype(np.float32)


def known_sets(step: int) -> list[list[int]]:
    """Row i's set: n_i = i % (K + 1) of [another replica's item, an earlier item, its own, 99]."""
    items = STEPS[step][1]
    earlier = STEPS[step - 1][1][-MEMORY:] if step else items
    sets = []
    for i, own in enumerate(items):
        other = items[LOCAL:] if i < LOCAL else items[:LOCAL]
        mine = items[:LOCAL] if i < LOCAL else items[LOCAL:]
        only_there = [int(x) for x in other if x not in mine]
        pool = [only_there[(i + step) % len(only_there)]] if only_there else []
        pool += [int(earlier[(2 * i + 1) % len(earlier)]), int(own), 99]
        sets.append(pool[: i % (K + 1)])
    return sets


def padded(sets) -> np.ndarray:
    return np.array([row + [PAD] * (K - len(row)) for row in sets], np.int64)


def per_replica(values):
    """The global batch split in two halves, one per replica (ragged when `values` is a list)."""

    def half(ctx):
        start = ctx.replica_id_in_sync_group * LOCAL
        part = values[start : start + LOCAL]
        if isinstance(values, list):
            return tf.ragged.constant(part, dtype=tf.int64, ragged_rank=1)
        return tf.constant(part)

    return strategy.experimental_distribute_values_from_function(half)


def make():
    users = tf.Variable(USER_TABLE)
    items = tf.Variable(ITEM_TABLE)
    layer = InBatchSoftmaxRetrieval(
        mask_same_query=True,
        logq_correction=True,
        estimator_buckets=BUCKETS,
        estimator_learning_rate=ALPHA,
        memory_size=MEMORY,
        embedding_dim=DIM,
        global_negatives=True,
        temperature=TEMPERATURE,
        padding_id=PAD,
    )
    return users, items, layer


def step_fn(users, items, layer):
    def step(u, m, known):
        with tf.GradientTape() as tape:
            loss = layer(
                tf.gather(users, u),
                tf.gather(items, m),
                candidate_ids=m,
                query_ids=u,
                known_positive_ids=known,
                training=True,
            )
            total = tf.reduce_sum(loss)
        grads = tape.gradient(total, [users, items])
        return loss, [tf.convert_to_tensor(g) for g in grads]

    return step


def functional_step(users, items, prob, memory, u, m, known):
    """The functional loss on the whole batch; ``memory``: the layer's rows before the step."""
    # Only the filled rows (the first ones until the ring wraps), as plain extra negatives.
    filled = int(memory[3])
    emb, ids, m_prob = (x[:filled] if filled else None for x in memory[:3])
    with tf.GradientTape() as tape:
        loss = nn.in_batch_softmax_loss(
            tf.gather(users, u),
            tf.gather(items, m),
            candidate_ids=m,
            candidate_sampling_probability=prob,
            extra_negative_embeddings=emb,
            extra_negative_ids=ids,
            extra_negative_sampling_probability=m_prob,
            query_ids=u,
            known_positive_ids=nn.label_set(known, padding_id=PAD),
            temperature=TEMPERATURE,
        )
        total = tf.reduce_sum(loss)
    return loss, [tf.convert_to_tensor(g) for g in tape.gradient(total, [users, items])]


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def main():
    out = {"loss_diff": [], "grad_diff": [], "functional_loss_diff": [], "functional_grad_diff": []}
    with strategy.scope():
        d_users, d_items, d_layer = make()
    s_users, s_items, s_layer = make()
    f_users, f_items = tf.Variable(USER_TABLE), tf.Variable(ITEM_TABLE)
    f_estimator = StreamingFrequencyEstimator(BUCKETS, 2, ALPHA)
    d_step = tf.function(step_fn(d_users, d_items, d_layer))
    s_step = tf.function(step_fn(s_users, s_items, s_layer))
    first_losses = None
    for t, (users, items) in enumerate(STEPS):
        known = padded(known_sets(t))
        mem = d_layer.memory
        snapshot = (
            mem.embeddings.numpy(), mem.ids.numpy(), mem.probability.numpy(), mem.filled.numpy()
        )  # fmt: skip
        d_loss, d_grads = strategy.run(
            d_step, (per_replica(users), per_replica(items), per_replica(known))
        )
        s_loss, s_grads = s_step(tf.constant(users), tf.constant(items), tf.constant(known))
        prob = f_estimator(tf.constant(items), training=True)
        f_loss, f_grads = functional_step(f_users, f_items, prob, snapshot, users, items, known)
        d_loss = np.concatenate([x.numpy() for x in strategy.experimental_local_results(d_loss)])
        d_grads = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in d_grads]
        out["loss_diff"].append(max_diff(d_loss, s_loss))
        out["functional_loss_diff"].append(max_diff(d_loss, f_loss))
        out["grad_diff"].append(max(max_diff(a, b) for a, b in zip(d_grads, s_grads, strict=True)))
        out["functional_grad_diff"].append(
            max(max_diff(a, b) for a, b in zip(d_grads, f_grads, strict=True))
        )
        # Sensitivity: the losses without the set entries that only the other
        # replica's columns (step 1) or only the memory's (step 2) hold.
        if t == 0:
            first_losses = s_loss.numpy()
            seen = [items[:LOCAL]] * LOCAL + [items[LOCAL:]] * LOCAL
        else:
            seen = [items] * (2 * LOCAL)
        fewer = [[x for x in row if x in seen[i]] for i, row in enumerate(known_sets(t))]
        fewer_loss, _ = functional_step(
            f_users, f_items, prob, snapshot, users, items, padded(fewer)
        )
        out[("cross_known_effect", "memory_known_effect")[t]] = max_diff(f_loss, fewer_loss)
        for variables, grads in (
            ((d_users, d_items), d_grads),
            ((s_users, s_items), s_grads),
            ((f_users, f_items), f_grads),
        ):
            for v, g in zip(variables, grads, strict=True):
                v.assign_sub(LR * g)
    out["weights_diff"] = max(max_diff(d_users, s_users), max_diff(d_items, s_items))
    out["functional_weights_diff"] = max(max_diff(d_users, f_users), max_diff(d_items, f_items))
    out["weights_moved"] = max_diff(d_items, ITEM_TABLE)
    out["memory_diff"] = max_diff(d_layer.memory.embeddings, s_layer.memory.embeddings)
    out["memory_filled"] = int(d_layer.memory.filled.numpy())
    out["padded_rows"] = int((padded(known_sets(0)) == PAD).all(axis=1).sum())

    # Ragged per-replica sets (the first step, fresh layers): the same losses as padded.
    with strategy.scope():
        r_users, r_items, r_layer = make()
    users, items = STEPS[0]
    r_loss, _ = strategy.run(
        tf.function(step_fn(r_users, r_items, r_layer)),
        (per_replica(users), per_replica(items), per_replica(known_sets(0))),
    )
    r_loss = np.concatenate([x.numpy() for x in strategy.experimental_local_results(r_loss)])
    out["ragged_loss_diff"] = max_diff(r_loss, first_losses)
    out = {k: max(v) if isinstance(v, list) else v for k, v in out.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
