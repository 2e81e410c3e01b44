"""Retrieval under MirroredStrategy over 2 logical CPUs against one device; prints one JSON line.

Run as a script by ``tests/test_retrieval_keras.py`` (the logical devices must
be configured before TensorFlow initializes). Checks:
* the frequency estimator updated per replica equals one estimator fed the
  global batch;
* ``InBatchSoftmaxRetrieval(global_negatives=True)`` with hit and same-query
  masking, the logQ correction and a memory: each replica's per-example losses
  and the summed gradients equal one device's on the global batch, for two
  steps (the second reads the memory and the estimator the first wrote).
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

from tf_sampling.layers import InBatchSoftmaxRetrieval, StreamingFrequencyEstimator  # noqa: E402

NUM_USERS, NUM_ITEMS, DIM, LOCAL = 7, 9, 4, 5
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
STEPS = [
    (rng.integers(0, NUM_USERS, 2 * LOCAL), rng.integers(0, NUM_ITEMS, 2 * LOCAL)) for _ in range(2)
]
USER_TABLE = rng.normal(size=(NUM_USERS, DIM)).astype(np.float32)
ITEM_TABLE = rng.normal(size=(NUM_ITEMS, DIM)).astype(np.float32)


def per_replica(values):
    """The global batch split in two halves, one per replica."""
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(
            values[
                ctx.replica_id_in_sync_group * LOCAL : (ctx.replica_id_in_sync_group + 1) * LOCAL
            ]
        )
    )


def make(global_negatives=True):
    users = tf.Variable(USER_TABLE)
    items = tf.Variable(ITEM_TABLE)
    layer = InBatchSoftmaxRetrieval(
        mask_same_query=True,
        logq_correction=True,
        estimator_buckets=32,
        estimator_learning_rate=0.3,
        memory_size=6,
        embedding_dim=DIM,
        global_negatives=global_negatives,
        temperature=0.7,
    )
    return users, items, layer


def step_fn(users, items, layer):
    def step(u, m):
        with tf.GradientTape() as tape:
            loss = layer(
                tf.gather(users, u),
                tf.gather(items, m),
                candidate_ids=m,
                query_ids=u,
                training=True,
            )
            total = tf.reduce_sum(loss)
        grads = tape.gradient(total, [users, items])
        return loss, [tf.convert_to_tensor(g) for g in grads]

    return step


def main():
    out = {}
    # 1. Estimator.
    with strategy.scope():
        distributed = StreamingFrequencyEstimator(16, 2, 0.25)
    single = StreamingFrequencyEstimator(16, 2, 0.25)
    update = tf.function(lambda ids: strategy.run(lambda x: distributed(x, training=True), (ids,)))
    for _, items in STEPS:
        update(per_replica(items))
        single(tf.constant(items), training=True)
    out["estimator_gap_diff"] = float(np.abs(distributed.gap.numpy() - single.gap.numpy()).max())
    out["estimator_steps"] = [int(distributed.step.numpy()), int(single.step.numpy())]
    replica_gaps = [v.numpy() for v in distributed.gap.value.values]
    out["estimator_replicas_agree"] = bool(np.array_equal(replica_gaps[0], replica_gaps[1]))

    # 2. Global negatives (+ masking, logQ, memory) vs one device with the global batch.
    with strategy.scope():
        d_users, d_items, d_layer = make()
    s_users, s_items, s_layer = make()
    d_step = tf.function(step_fn(d_users, d_items, d_layer))
    s_step = tf.function(step_fn(s_users, s_items, s_layer))
    loss_diffs, grad_diffs, losses = [], [], []
    for users, items in STEPS:
        d_loss, d_grads = strategy.run(d_step, (per_replica(users), per_replica(items)))
        s_loss, s_grads = s_step(tf.constant(users), tf.constant(items))
        d_loss = np.concatenate([t.numpy() for t in strategy.experimental_local_results(d_loss)])
        loss_diffs.append(float(np.abs(d_loss - s_loss.numpy()).max()))
        losses.append(float(s_loss.numpy().sum()))
        for d_g, s_g in zip(d_grads, s_grads, strict=True):
            summed = strategy.reduce(tf.distribute.ReduceOp.SUM, d_g, axis=None).numpy()
            grad_diffs.append(float(np.abs(summed - s_g.numpy()).max()))
    out["loss_diff"] = max(loss_diffs)
    out["grad_diff"] = max(grad_diffs)
    out["losses"] = losses
    out["memory_diff"] = float(
        np.abs(d_layer.memory.embeddings.numpy() - s_layer.memory.embeddings.numpy()).max()
    )
    out["memory_filled"] = int(d_layer.memory.filled.numpy())
    # Without gathering, each replica sees only its half of the batch: the losses differ.
    with strategy.scope():
        l_users, l_items, l_layer = make(global_negatives=False)
    l_step = tf.function(step_fn(l_users, l_items, l_layer))
    users, items = STEPS[0]
    l_loss, _ = strategy.run(l_step, (per_replica(users), per_replica(items)))
    s_users, s_items, s_layer = make()
    s_loss, _ = tf.function(step_fn(s_users, s_items, s_layer))(
        tf.constant(users), tf.constant(items)
    )
    l_loss = np.concatenate([t.numpy() for t in strategy.experimental_local_results(l_loss)])
    out["local_only_loss_diff"] = float(np.abs(l_loss - s_loss.numpy()).max())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
