"""MirroredStrategy over 2 logical CPUs against one device; prints one JSON line.

Run as a script (``python tests/distributed_mirrored_check.py``) by
``tests/test_distributed.py``: the two logical devices must be configured
before TensorFlow initializes its devices, so this cannot run inside the
pytest process. Each check computes the same thing twice, once under the
strategy and once on one device, and reports both; the test compares them.
"""

from __future__ import annotations

import functools
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import tf_sampling  # noqa: E402
from tf_sampling import optimizers  # noqa: E402

NUM_CLASSES, IN_DIM, DIM, BATCH, NUM_SAMPLED = 40, 6, 5, 16, 7


class FixedDrawsSampler:
    """A sampler object whose draws are fixed per step (a cycle of candidate sets).

    The expected counts are ``q[class] * num_sampled`` for a fixed
    distribution ``q``; the step counter is a variable, so under a strategy all
    replicas of one step use the same candidates (as the injected
    ``sampled_values`` of a functional call would be).
    """

    unique = True

    def __init__(self, num_classes: int, num_sampled: int, num_sets: int = 3):
        rng = np.random.default_rng(7)
        self.sets = tf.constant(
            np.stack(
                [rng.choice(num_classes, num_sampled, replace=False) for _ in range(num_sets)]
            ),
            tf.int64,
        )
        q = rng.uniform(0.5, 1.5, num_classes)
        self.q = tf.constant(q / q.sum(), tf.float32)
        # Replica-local step counters (created in the strategy's scope): every
        # replica counts its own calls, so all of them, and one device, walk the
        # same sequence of candidate sets.
        self.step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def sample(self, true_classes, num_true, num_sampled):
        candidates = tf.gather(self.sets, self.step % self.sets.shape[0])
        with tf.control_dependencies([candidates]):
            self.step.assign_add(1)
        count = float(num_sampled)
        return (
            candidates,
            tf.gather(self.q, true_classes) * count,
            tf.gather(self.q, candidates) * count,
        )


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * BATCH, IN_DIM)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=4 * BATCH).astype("int64")
    return x, y


def make_model(kind: str, sampler) -> keras.Model:
    layer_cls = {
        "softmax": tf_sampling.layers.SampledSoftmax,
        "nce": tf_sampling.layers.NCE,
        # TAPAS keeps the 3 of the 7 candidates that rank highest over the batch.
        "rank": functools.partial(tf_sampling.layers.RankSampledSoftmax, num_resampled=3),
    }[kind]
    inputs = keras.Input((IN_DIM,))
    hidden = keras.layers.Dense(DIM, kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    head = layer_cls(
        NUM_CLASSES,
        NUM_SAMPLED,
        sampler=sampler,
        bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=2),
        kernel_initializer=keras.initializers.GlorotUniform(3),
        name="head",
    )
    return keras.Model(inputs, head(hidden))


def loss_object(kind: str):
    return {
        "softmax": tf_sampling.losses.SampledSoftmaxLoss,
        "nce": tf_sampling.losses.NCELoss,
        "rank": tf_sampling.losses.RankSampledSoftmaxLoss,
    }[kind]()


def loss_and_gradients(kind: str, strategy) -> dict:
    """One global batch: the reduced loss and the summed gradients of the head."""
    x, y = data()
    x, y = x[:BATCH], y[:BATCH]
    with strategy.scope():
        sampler = FixedDrawsSampler(NUM_CLASSES, NUM_SAMPLED)
        model = make_model(kind, sampler)
        loss_fn = loss_object(kind)
    head = model.get_layer("head")
    variables = [head.kernel, head.bias]
    kinds = []

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, variables)
        kinds.extend(type(g).__name__ for g in grads)
        # Densify only to report the values; the tape gave IndexedSlices.
        return loss, [tf.convert_to_tensor(g) for g in grads]

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    loss, grads = tf.function(lambda b: strategy.run(replica_step, args=b))(batch)
    loss = strategy.reduce("SUM", loss, axis=None)
    grads = [strategy.reduce("SUM", g, axis=None) for g in grads]
    return {
        "loss": float(loss),
        "grads": [g.numpy().tolist() for g in grads],
        "grad_types": sorted(set(kinds)),
        "replicas": strategy.num_replicas_in_sync,
    }


class RecordingLazyAdam(optimizers.LazyAdam):
    """LazyAdam that records, while tracing, which gradient types reach ``update_step``."""

    seen: set = set()

    def update_step(self, gradient, variable, learning_rate):
        RecordingLazyAdam.seen.add(type(gradient).__name__)
        return super().update_step(gradient, variable, learning_rate)


def fit(kind: str, strategy, initial_weights=None) -> dict:
    """Three epochs of ``fit`` with LazyAdam; the weights, the loss history and evaluate."""
    x, y = data()
    with strategy.scope():
        model = make_model(kind, FixedDrawsSampler(NUM_CLASSES, NUM_SAMPLED))
        if initial_weights is not None:
            model.set_weights(initial_weights)
        # "summed": independent of how the batch is split over replicas (with the
        # default "per_lookup" each replica's part of a shared row is a lookup).
        model.compile(
            RecordingLazyAdam(learning_rate=0.05, second_moment="summed"), loss=loss_object(kind)
        )
    initial = [w.copy() for w in model.get_weights()]
    RecordingLazyAdam.seen = set()
    history = model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    evaluated = model.evaluate(x, y, batch_size=BATCH, verbose=0)
    return {
        "initial": [w.tolist() for w in initial],
        "weights": [w.tolist() for w in model.get_weights()],
        "loss": history.history["loss"],
        "evaluate": float(evaluated),
        "update_types": sorted(RecordingLazyAdam.seen),
    }


def main() -> None:
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    result = {}
    for kind in ("softmax", "nce", "rank"):
        result[f"grad_{kind}"] = {
            "mirrored": loss_and_gradients(kind, mirrored),
            "one": loss_and_gradients(kind, one),
        }
    one_fit = fit("softmax", one)
    initial = [np.asarray(w, np.float32) for w in one_fit["initial"]]
    result["fit"] = {"one": one_fit, "mirrored": fit("softmax", mirrored, initial)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
