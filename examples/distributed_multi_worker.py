"""Keras 3 ``model.fit`` under ``MultiWorkerMirroredStrategy``, on a loopback cluster.

Synchronous data parallelism over several processes (machines, on a real
cluster): every worker holds a copy of the model, trains on its share of each
global batch, and the gradients are summed across workers by collective ops
(ring all-reduce on CPUs; the class table's row-sparse gradient is
all-gathered) before ``tf_sampling.optimizers.LazyAdam`` applies them.

Run without ``TF_CONFIG``, this script is the launcher: it starts
``--workers`` copies of itself on 127.0.0.1 (free ports, one ``TF_CONFIG``
each), waits for them under a deadline, and kills every one it started (also
on failure or timeout). With ``--compare-one-device`` it then trains the same
model on one device with the same global batches and reports the largest
weight difference::

    python examples/distributed_multi_worker.py --compare-one-device
    python examples/distributed_multi_worker.py --workers 3 --epochs 5

On a real cluster, start the worker role on every machine with its own
``TF_CONFIG`` (worker 0 is the chief)::

    export TF_CONFIG='{"cluster": {"worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker", "index": 0}}'
    python examples/distributed_multi_worker.py --worker

Why it matches one device: ``batch_size`` is the global batch; ``tf.data``
auto-sharding (``DATA`` policy) gives worker ``k`` the ``k``-th slice of each
global batch; Keras divides each replica's summed loss by the local batch and
by the number of replicas, so the summed gradient is the one of the mean over
the global batch. The sampled classes are the same everywhere because the
layer uses a compilable (stateless, seeded) sampler: the draws of call ``n``
are a function of ``(seed, n)`` only, every replica makes one call per step,
so every replica, and the one-device run, samples the same classes at step
``n`` (the sampler's counter is a per-replica copy, advanced in lockstep).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from distributed_ps import free_ports  # a sibling example (this directory is on sys.path)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes to launch")
    parser.add_argument("--worker", action="store_true", help="run as a worker (reads TF_CONFIG)")
    parser.add_argument("--result-file", default=None, help="(worker) where to write its JSON")
    parser.add_argument("--num-classes", type=int, default=5000)
    parser.add_argument("--num-sampled", type=int, default=64)
    parser.add_argument("--in-dim", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument(
        "--epsilon",
        type=float,
        default=1e-7,
        help="Adam's epsilon; a large one makes the step depend on the gradient's scale",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before all is killed")
    parser.add_argument("--compare-one-device", action="store_true")
    parser.add_argument("--report-weights", action="store_true", help="weights in the JSON")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- model and data


def make_data(args):
    """Features near a random embedding of their Zipf-distributed label (the same in every task)."""
    import numpy as np

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(args.num_classes, args.in_dim)).astype("float32")
    y = np.minimum(rng.zipf(1.2, args.examples) - 1, args.num_classes - 1).astype("int64")
    x = teacher[y] + rng.normal(size=(args.examples, args.in_dim)).astype("float32")
    return x, y


def make_dataset(args):
    """Global batches; a worker's share of each is cut out by ``DATA`` auto-sharding."""
    import tensorflow as tf

    x, y = make_data(args)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size, drop_remainder=True)
    options = tf.data.Options()
    # Elements, not files: worker k gets the k-th slice of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def make_model(args):
    """A Dense layer and a ``SampledSoftmax`` head, every initial value seeded."""
    import keras

    import tf_sampling

    inputs = keras.Input((args.in_dim,))
    hidden = keras.layers.Dense(
        args.dim, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1)
    )(inputs)
    head = tf_sampling.layers.SampledSoftmax(
        args.num_classes,
        args.num_sampled,
        # Stateless draws from (seed, call count): the same classes on every
        # replica and worker at a given step (see the module docstring).
        sampler={"name": "log_uniform", "compilable": True},
        seed=7,
        kernel_initializer=keras.initializers.GlorotUniform(2),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=3),
        name="head",
    )
    return keras.Model(inputs, head(hidden))


def _reporting_lazy_adam(learning_rate: float, epsilon: float):
    """``LazyAdam`` that notes which gradient types reach ``update_step`` (read while tracing)."""
    from tf_sampling import optimizers

    class ReportingLazyAdam(optimizers.LazyAdam):
        gradient_types: set = set()

        def update_step(self, gradient, variable, learning_rate):
            self.gradient_types.add(type(gradient).__name__)
            return super().update_step(gradient, variable, learning_rate)

    # "summed": the update of a row that several workers look up (the shared
    # sampled candidates) does not depend on how the batch is split, so the
    # workers can equal one device; "per_lookup" (the default, Keras' rule)
    # counts each worker's part of such a row as a lookup of its own.
    return ReportingLazyAdam(learning_rate=learning_rate, epsilon=epsilon, second_moment="summed")


def train(args, strategy) -> dict:
    """Builds, compiles and fits the model in ``strategy``'s scope.

    Returns:
      dict: ``replicas``, ``loss`` (per epoch), ``gradient_types`` seen by the
      optimizer, ``sampler_calls``; with ``--report-weights`` also
      ``initial`` and ``weights`` (lists of nested lists).
    """
    import tensorflow as tf

    import tf_sampling

    dataset = make_dataset(args)
    with strategy.scope():
        model = make_model(args)
        optimizer = _reporting_lazy_adam(args.learning_rate, args.epsilon)
        model.compile(optimizer=optimizer, loss=tf_sampling.losses.SampledSoftmaxLoss())
    initial = [w.tolist() for w in model.get_weights()]
    history = model.fit(dataset, epochs=args.epochs, verbose=0)
    head = model.get_layer("head")
    step = head.sampler.step.value
    calls = [int(v) for v in strategy.experimental_local_results(step)]
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "loss": history.history["loss"],
        "gradient_types": sorted(optimizer.gradient_types),
        "table_gradient_sparse": bool(tf.IndexedSlices.__name__ in optimizer.gradient_types),
        "sampler_calls": calls,
    }
    if args.report_weights:
        result["initial"] = initial
        result["weights"] = [w.tolist() for w in model.get_weights()]
    return result


# --------------------------------------------------------------------------- roles


def reduce_nests(strategy):
    """Makes ``strategy.reduce`` take what Keras 3's ``fit`` gives it on several workers.

    Two calls of Keras 3 (3.15) fail under ``MultiWorkerMirroredStrategy``
    with more than one worker (keras#20585, tensorflow#72388), because that
    strategy's ``reduce`` takes one value at a time:

    * before the first step, ``fit`` reduces the first input batch, a tuple,
      in one call (``ValueError: Attempt to convert a value (PerReplica...)``);
    * after each step it reduces every scalar log with ``axis=0``
      (``ValueError: Invalid reduction dimension 0 for input with 0 dimensions``).

    This wraps the instance's ``reduce`` to reduce each leaf of a nest, and a
    scalar across replicas only (``axis=None``: the mean of the workers'
    values). Every worker makes the same calls in the same order, so their
    collectives match.

    Args:
      strategy: a ``tf.distribute.Strategy``; changed in place.

    Returns:
      The same strategy.
    """
    import tensorflow as tf

    reduce_one = strategy.reduce

    def rank(value):
        return strategy.experimental_local_results(value)[0].shape.rank

    def reduce_leaf(reduce_op, value, axis):
        if value is None:
            return None
        return reduce_one(reduce_op, value, axis=None if rank(value) == 0 else axis)

    def reduce(reduce_op, value, axis=None):
        return tf.nest.map_structure(lambda v: reduce_leaf(reduce_op, v, axis), value)

    strategy.reduce = reduce
    return strategy


def worker_main(args) -> dict:
    """One worker: ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, then ``train``."""
    # Nothing may outlive the launcher's deadline, even a worker stuck in a
    # collective whose peer died.
    watchdog = threading.Timer(args.timeout, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    import tensorflow as tf

    # Created first: it configures this process's collective runtime.
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = reduce_nests(
        tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    )
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    result = {"task": task, **train(args, strategy)}
    if args.result_file:
        with open(args.result_file, "w") as f:
            json.dump(result, f)
    return result


def _forwarded(args) -> list[str]:
    """The model/data flags, for the workers to build exactly the launcher's model."""
    names = ("num_classes", "num_sampled", "in_dim", "dim", "examples", "batch_size", "epochs")
    flags = [f"--{n.replace('_', '-')}={getattr(args, n)}" for n in names]
    flags += [f"--learning-rate={args.learning_rate}", f"--epsilon={args.epsilon}"]
    flags.append(f"--timeout={args.timeout}")
    return flags + (["--report-weights"] if args.report_weights else [])


def launch(args, meanwhile=None) -> dict:
    """Starts ``args.workers`` worker processes on loopback, collects their results.

    Every process started here is killed before this returns or raises.

    Args:
      args: the parsed flags.
      meanwhile: optional callable run here while the workers train; its
        result is returned under ``"meanwhile"``.

    Raises:
      RuntimeError: a worker failed (its stderr tail is in the message).
      TimeoutError: the workers did not finish within ``args.timeout`` seconds.
    """
    addresses = [f"127.0.0.1:{p}" for p in free_ports(args.workers)]
    directory = tempfile.mkdtemp(prefix="tf_sampling_mwms_")
    processes, logs = [], []
    try:
        for index in range(args.workers):
            tf_config = {
                "cluster": {"worker": addresses},
                "task": {"type": "worker", "index": index},
            }
            env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
            env.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU collectives in this demo
            log = open(os.path.join(directory, f"worker{index}.log"), "w+")  # noqa: SIM115
            logs.append(log)
            result_file = os.path.join(directory, f"worker{index}.json")
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--worker",
                        f"--result-file={result_file}",
                        *_forwarded(args),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + args.timeout
        done_meanwhile = meanwhile() if meanwhile is not None else None
        while None in [p.poll() for p in processes]:  # poll every one: a list, not any()
            failed = [k for k, p in enumerate(processes) if p.returncode not in (None, 0)]
            if failed:  # its peers would wait for it in a collective forever
                logs[failed[0]].seek(0)
                tail = logs[failed[0]].read()[-3000:]
                raise RuntimeError(
                    f"worker {failed[0]} exited with {processes[failed[0]].returncode}:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not done after {args.timeout} s")
            time.sleep(0.2)
        for k, p in enumerate(processes):
            if p.returncode != 0:
                logs[k].seek(0)
                raise RuntimeError(
                    f"worker {k} exited with {p.returncode}:\n{logs[k].read()[-3000:]}"
                )
        results = []
        for index in range(args.workers):
            with open(os.path.join(directory, f"worker{index}.json")) as f:
                results.append(json.load(f))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        for p in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        for log in logs:
            log.close()
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "workers": results,
        "worker_pids": [p.pid for p in processes],
        "meanwhile": done_meanwhile,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    keep_weights = args.report_weights
    args.report_weights = keep_weights or args.compare_one_device  # needed to compare

    def one_device() -> dict:
        import tensorflow as tf

        return train(args, tf.distribute.OneDeviceStrategy("/cpu:0"))

    # The one-device reference trains here while the workers do.
    result = launch(args, one_device if args.compare_one_device else None)
    one = result.pop("meanwhile")
    if one is not None:
        import numpy as np

        result["one_device"] = one
        result["max_weight_difference"] = max(
            float(np.abs(np.asarray(a) - np.asarray(b)).max())
            for a, b in zip(result["workers"][0]["weights"], one["weights"], strict=True)
        )
    if not keep_weights:
        for entry in [*result["workers"], result.get("one_device", {})]:
            entry.pop("initial", None), entry.pop("weights", None)
    if args.json:
        print(json.dumps(result))
    else:
        for worker in result["workers"]:
            print(
                f"worker {worker['task']['index']}: {worker['replicas']} replicas in sync, "
                f"loss per epoch {worker['loss']}, gradients {worker['gradient_types']}"
            )
        if "one_device" in result:
            print(f"one device: loss per epoch {result['one_device']['loss']}")
        if "max_weight_difference" in result:
            print(
                f"largest weight difference, chief vs one device: "
                f"{result['max_weight_difference']:.3g}"
            )
    return result


if __name__ == "__main__":
    main()
