"""tf_keras ``model.fit`` under ``ParameterServerStrategy`` with a sharded class table.

Keras 3 has no ``ParameterServerStrategy`` support (keras#18624); tf_keras
(Keras 2, ``pip install tf_keras``, used by ``tf.keras`` when
``TF_USE_LEGACY_KERAS=1``) has. Our Keras layers are Keras 3 layers, so the
model here is a small tf_keras model whose ``train_step`` calls the
functional loss ``tf_sampling.nn.sampled_softmax_loss`` on its class table,
a ``ShardedVariable`` cut by the strategy's ``variable_partitioner`` into one
shard per PS task. tf_keras' optimizers create each slot of a sharded
variable as a ``ShardedVariable`` with the same shards on the same tasks.

Starts 2 workers and 2 PS on 127.0.0.1 (``distributed_ps.LocalCluster``: one
process per task, all killed on exit), fits, and evaluates the exact full
softmax of the training set on this process (the chief) before and after::

    pip install tf_keras~=2.21
    python examples/distributed_ps_tf_keras.py
"""

from __future__ import annotations

import argparse
import json
import os

# Must precede the first TensorFlow import: tf.keras is then tf_keras.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
from distributed_ps import LocalCluster, chief_strategy, cluster_spec  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=200)
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--in-dim", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32, help="batch per worker step")
    parser.add_argument("--num-sampled", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--steps-per-epoch", type=int, default=10)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    return parser.parse_args(argv)


def make_model(args):
    """A tf_keras model: a projection, and a class table trained by the sampled softmax."""
    import tensorflow as tf

    import tf_sampling

    class SampledSoftmaxModel(tf.keras.Model):
        """``call`` gives the hidden vectors; ``train_step`` applies the sampled loss."""

        def __init__(self):
            super().__init__()
            self.projection = tf.keras.layers.Dense(args.dim)
            # Both [num_classes, ...] floats: the partitioner shards them.
            self.table = self.add_weight(
                name="class_weights",
                shape=[args.num_classes, args.dim],
                initializer=tf.keras.initializers.TruncatedNormal(0.0, 0.05, seed=1),
            )
            self.table_bias = self.add_weight(
                name="class_biases", shape=[args.num_classes], initializer="zeros"
            )
            self.gradient_types: set = set()
            # A metric, so that fit's logs are read from it (under this
            # strategy tf_keras does not read a step's returned tensors).
            self.loss_tracker = tf.keras.metrics.Mean(name="loss")

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, inputs):
            return self.projection(inputs)

        def train_step(self, data):
            features, labels = data
            labels = tf.reshape(tf.cast(labels, tf.int64), [-1, 1])
            with tf.GradientTape() as tape:
                per_example = tf_sampling.nn.sampled_softmax_loss(
                    self.table,
                    self.table_bias,
                    labels,
                    self(features, training=True),
                    num_sampled=args.num_sampled,
                    num_classes=args.num_classes,
                    partition_strategy="div",  # a ShardedVariable is read as it is cut
                )
                loss = tf.nn.compute_average_loss(per_example)
            gradients = tape.gradient(loss, self.trainable_variables)
            self.gradient_types.update(type(g).__name__ for g in gradients)  # while tracing
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
            self.loss_tracker.update_state(tf.reduce_mean(per_example))
            return {"loss": self.loss_tracker.result()}

    return SampledSoftmaxModel()


def make_data(args, count: int, seed: int):
    """Features near a fixed random embedding of a uniform label."""
    rng = np.random.default_rng(seed)
    teacher = np.random.default_rng(0).normal(size=(args.num_classes, args.in_dim))
    labels = rng.integers(0, args.num_classes, count)
    features = teacher[labels] + 0.5 * rng.normal(size=(count, args.in_dim))
    return features.astype("float32"), labels


def exact_loss(model, args, features, labels) -> float:
    """Full-softmax cross-entropy (mean), computed on the chief in class blocks."""
    import tensorflow as tf

    import tf_sampling

    return float(
        tf.reduce_mean(
            tf_sampling.nn.full_softmax_cross_entropy(
                model.table,
                model.table_bias,
                labels[:, None],
                model(features),
                num_classes=args.num_classes,
                partition_strategy="div",
            )
        )
    )


def shard_devices(variable) -> list[str]:
    return [v.device for v in getattr(variable, "variables", [variable])]


def main(argv=None) -> dict:
    args = parse_args(argv)
    cluster = cluster_spec(args.workers, args.ps)
    with LocalCluster(cluster, start_timeout=args.start_timeout) as local:
        import tensorflow as tf

        strategy = chief_strategy(cluster, args.num_classes)
        with strategy.scope():
            model = make_model(args)
            model(tf.zeros([1, args.in_dim]))  # builds the projection in the scope (on a PS)
            model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate))
        x, y = make_data(args, args.examples, seed=1)
        loss_before = exact_loss(model, args, x, y)

        def dataset_fn(context):
            # Each worker builds its own pipeline: shuffled batches, repeated.
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=3)
            return dataset.repeat().batch(args.batch)

        history = model.fit(
            tf.keras.utils.experimental.DatasetCreator(dataset_fn),
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            verbose=0,
        )
        table_slots = [s for s in model.optimizer.variables() if isinstance(s, type(model.table))]
        result = {
            "tf_keras": tf.keras.__name__.startswith("tf_keras"),
            "table_type": type(model.table).__name__,
            "table_shards": shard_devices(model.table),
            "bias_shards": shard_devices(model.table_bias),
            "table_slot_shards": [shard_devices(s) for s in table_slots],
            "gradient_types": sorted(model.gradient_types),
            "iterations": int(model.optimizer.iterations.numpy()),
            "loss": history.history["loss"],
            "loss_before": loss_before,
            "loss_after": exact_loss(model, args, x, y),
            "task_pids": local.pids(),
        }
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
