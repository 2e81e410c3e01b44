"""Keras 3 ``model.fit`` of a sampled-softmax model under ``tf.distribute.MirroredStrategy``.

Synchronous data parallelism: every replica holds a copy of the model,
computes the sampled loss on its slice of each global batch, and the
gradients are summed across replicas before ``LazyAdam`` applies them. The
class table's gradient stays a ``tf.IndexedSlices`` all along (all-gathered,
duplicate rows summed by the optimizer), so a step costs O(touched rows).

On a machine with several GPUs the strategy uses them all; on a CPU-only
machine this script splits the CPU into ``--replicas`` logical devices (which
must happen before TensorFlow initializes its devices, hence at the top)::

    python examples/distributed_mirrored.py                 # 2 replicas
    python examples/distributed_mirrored.py --epochs 5 --num-classes 50000

The same script runs on several machines with ``MultiWorkerMirroredStrategy``
(``--multi-worker``, with a ``TF_CONFIG`` per machine; see docs/distributed.md).
``examples/distributed_multi_worker.py`` is the tested multi-worker version
(a loopback launcher, global batches sharded by ``tf.data``, one-device check).

Conventions it relies on (those of ``tf.distribute``): ``batch_size`` is the
global batch, split evenly over the replicas; Keras divides each replica's
sum of per-example losses by its local batch and by the number of replicas,
so the summed gradient is that of the mean over the global batch, and
training matches one device with the same global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="logical CPU devices without GPUs")
    parser.add_argument("--multi-worker", action="store_true", help="MultiWorkerMirroredStrategy")
    parser.add_argument("--num-classes", type=int, default=5000)
    parser.add_argument("--num-sampled", type=int, default=64)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line")
    return parser.parse_args(argv)


def make_strategy(args):
    import tensorflow as tf

    if args.multi_worker:
        # Keras 3's fit needs this on several workers (keras#20585).
        from distributed_multi_worker import reduce_nests

        return reduce_nests(tf.distribute.MultiWorkerMirroredStrategy())
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas
    )
    return tf.distribute.MirroredStrategy([f"/cpu:{k}" for k in range(args.replicas)])


def main(argv=None) -> dict:
    args = parse_args(argv)
    import numpy as np

    strategy = make_strategy(args)  # before anything else touches the devices
    import keras

    import tf_sampling
    from tf_sampling import optimizers

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(args.num_classes, 32)).astype("float32")
    y = np.minimum(rng.zipf(1.2, args.examples) - 1, args.num_classes - 1)
    x = teacher[y] + rng.normal(size=(args.examples, 32)).astype("float32")

    with strategy.scope():  # variables (the class table too) are mirrored on every replica
        inputs = keras.Input((32,))
        hidden = keras.layers.Dense(args.dim, activation="relu")(inputs)
        head = tf_sampling.layers.SampledSoftmax(args.num_classes, args.num_sampled, seed=1)
        model = keras.Model(inputs, head(hidden))
        model.compile(
            optimizer=optimizers.LazyAdam(1e-2),
            loss=tf_sampling.losses.SampledSoftmaxLoss(),
            metrics=[tf_sampling.metrics.TopKAccuracy(k=5)],
        )
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    # Exact full-softmax cross-entropy and top-5 accuracy, also distributed.
    evaluated = model.evaluate(x, y, batch_size=args.batch_size, return_dict=True, verbose=0)
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "sampled_loss": history.history["loss"],
        "exact": evaluated,
        "reloaded_logits_equal": bool(
            np.allclose(reloaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))
        ),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['replicas']} replicas; sampled loss per epoch {result['sampled_loss']}")
        print(f"exact evaluation: {evaluated}; saved to {path}")
    return result


if __name__ == "__main__":
    main()
