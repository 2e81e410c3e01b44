"""Parameter-server training of a sampled-softmax class table on a loopback cluster.

Starts one process per task on 127.0.0.1 (``--workers`` workers and ``--ps``
parameter servers, each a ``tf.distribute.Server``), and this process is the
chief: it builds a ``tf.distribute.experimental.ParameterServerStrategy`` and
drives training with ``ClusterCoordinator.schedule``. It then saves a
checkpoint, evaluates the exact full softmax on the workers, and kills every
process it started (also when anything fails)::

    python examples/distributed_ps.py                       # 2 workers, 2 PS
    python examples/distributed_ps.py --steps 200 --num-classes 20000
    python examples/distributed_ps.py --restore CKPT_DIR --workers 1   # resume, other worker count

What runs where:

* The class table ``weights [num_classes, dim]`` and ``biases [num_classes]``
  are ``ShardedVariable``\\ s: the strategy's ``variable_partitioner`` cuts
  them into ``--ps`` shards of consecutive class ranges, one per PS task.
  ``tf_sampling.nn.sampled_softmax_loss`` reads that partitioning from the
  variable itself and gathers each shard's rows with an op that TensorFlow
  places on the shard's PS, so a worker only ever receives the rows of one
  step (true and sampled classes), never the table.
* The optimizer (``ShardedLazyAdam`` below, plain ``tf.Variable``\\ s) keeps
  one pair of Adam slots per shard, created with
  ``strategy.extended.colocate_vars_with(shard)``: the slots live on the
  shard's PS and a step reads and writes only the touched rows there.
* ``--sampler learned_unigram``: one ``tf_sampling.samplers.LearnedUnigramSampler``
  shared by all workers. Its count tree is a single variable on one PS (the
  partitioner never splits it), and every worker's step samples from it and
  adds its labels to it in place, under the variable's lock: one learned
  distribution, saved in the checkpoint.
* The checkpoint is written by the chief. ``ShardedVariable`` saves its shards
  as slices of one logical tensor, so it restores into any number of shards,
  PS tasks or workers, or into a plain single-device ``tf.Variable``
  (``restore_single_device``).

Prints one JSON line at the end (``--json``) with the losses and the layout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

# --------------------------------------------------------------------------- processes


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_spec(num_workers: int, num_ps: int) -> dict:
    """A loopback cluster: one chief (this process), ``num_workers`` workers, ``num_ps`` PS."""
    ports = free_ports(1 + num_workers + num_ps)
    address = [f"127.0.0.1:{p}" for p in ports]
    return {
        "chief": address[:1],
        "worker": address[1 : 1 + num_workers],
        "ps": address[1 + num_workers :],
    }


def serve(cluster: dict, job: str, index: int) -> None:
    """Runs one worker or PS task until killed (the body of every child process)."""
    import tensorflow as tf

    import tf_sampling

    # The learned-unigram op runs where its count tree lives (a PS) and is
    # part of the workers' graphs: every task must know its kernels.
    tf_sampling.ops.load_op_library()
    server = tf.distribute.Server(
        tf.train.ClusterSpec(cluster), job_name=job, task_index=index, protocol="grpc", start=True
    )
    print(f"serving {job}:{index}", flush=True)
    server.join()


class LocalCluster(contextlib.AbstractContextManager):
    """Starts the worker and PS processes of ``cluster``; kills all of them on exit.

    Each child runs this file with ``--serve JOB INDEX`` and its own
    ``TF_CONFIG``. Entering waits until every task accepts connections (or
    ``start_timeout`` seconds pass: ``TimeoutError``, after killing them).
    """

    def __init__(self, cluster: dict, start_timeout: float = 120.0):
        self.cluster = cluster
        self.start_timeout = start_timeout
        self.processes: dict[tuple[str, int], subprocess.Popen] = {}

    def start_task(self, job: str, index: int) -> subprocess.Popen:
        tf_config = {"cluster": self.cluster, "task": {"type": job, "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        # No GPU for the tasks of this demo; a real cluster keeps its own setup.
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", job, str(index)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes[(job, index)] = proc
        return proc

    def kill_task(self, job: str, index: int) -> None:
        proc = self.processes[(job, index)]
        proc.kill()
        proc.wait(timeout=30)

    def wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for job in ("worker", "ps"):
            for index, address in enumerate(self.cluster[job]):
                host, port = address.rsplit(":", 1)
                while True:
                    proc = self.processes[(job, index)]
                    if proc.poll() is not None:
                        raise RuntimeError(f"task {job}:{index} exited with {proc.returncode}")
                    try:
                        with socket.create_connection((host, int(port)), timeout=1):
                            break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise TimeoutError(
                                f"task {job}:{index} not up after {timeout} s"
                            ) from None
                        time.sleep(0.2)

    def __enter__(self):
        try:
            for job in ("ps", "worker"):
                for index in range(len(self.cluster[job])):
                    self.start_task(job, index)
            self.wait_until_up(self.start_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------- model


def table_partitioner(num_classes: int, num_shards: int):
    """A ``variable_partitioner`` that splits only the class table (and its biases).

    Variables whose first dimension is ``num_classes`` and whose dtype is
    floating get ``num_shards`` shards; every other variable (the projection,
    the sampler's int64 count tree, counters) stays whole on one PS.
    """
    import tensorflow as tf

    fixed = tf.distribute.experimental.partitioners.FixedShardsPartitioner(num_shards)

    def partitioner(shape, dtype):
        shape = tf.TensorShape(shape)
        if shape.rank and shape[0] == num_classes and tf.as_dtype(dtype).is_floating:
            return fixed(shape, dtype)
        return [1] * shape.rank

    return partitioner


def chief_strategy(cluster: dict, num_classes: int):
    """This process as the chief of ``cluster``: a ``ParameterServerStrategy``.

    The class table (``num_classes`` rows) is cut into one shard per PS task by
    :func:`table_partitioner`. On a real cluster, pass
    ``tf.distribute.cluster_resolver.TFConfigClusterResolver()`` to the
    strategy instead of this loopback resolver.
    """
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type="chief", task_id=0, rpc_layer="grpc"
    )
    return tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=table_partitioner(num_classes, len(cluster["ps"]))
    )


def _ShardedVariable(shards):  # noqa: N802 (a class, looked up lazily)
    import tensorflow as tf

    return tf.__internal__.distribute.ShardedVariable(shards)


def _shards(variable) -> list:
    return list(getattr(variable, "variables", [variable]))


class ShardedLazyAdam:
    """Adam on plain ``tf.Variable``\\ s and ``ShardedVariable``\\ s; lazy on ``IndexedSlices``.

    For each shard (or whole variable) the two moments are created next to it
    (``colocate_vars_with``), so under ``ParameterServerStrategy`` they are
    sharded exactly like the table. A sparse gradient (the class table's)
    updates only its rows, with TF-Addons' ``LazyAdam`` rule (global-step bias
    correction, duplicate indices summed before squaring). The arithmetic is
    ``tf_sampling.optimizers.adam_rows``, the same functions as
    ``tf_sampling.optimizers.LazyAdam(second_moment="summed")``, whose Keras 3
    machinery needs Keras variables that the strategy does not shard.

    Args:
      strategy: The strategy whose scope creates the slots.
      variables: list of ``tf.Variable`` / ``ShardedVariable`` to train.
      learning_rate, beta_1, beta_2, epsilon: Adam's hyperparameters (floats).
      slots: False for plain (lazy) SGD with no moments.
    """

    def __init__(
        self,
        strategy,
        variables,
        learning_rate=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        slots: bool = True,
    ):
        import tensorflow as tf

        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = (
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
        )
        self.variables = [s for v in variables for s in _shards(v)]
        with strategy.scope():
            self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
            self.slots = []
            for var in self.variables:
                if not slots:  # plain lazy SGD: no state beyond the step count
                    self.slots.append(None)
                    continue
                with strategy.extended.colocate_vars_with(var):
                    self.slots.append(
                        tuple(
                            tf.Variable(
                                lambda v=var: tf.zeros(v.shape, v.dtype),
                                trainable=False,
                                name=f"{var.name.split(':')[0]}/{slot}",
                            )
                            for slot in ("m", "v")
                        )
                    )
        # Per logical variable, its slots as one (sharded) table each: the
        # checkpoint then holds logical [num_classes, dim] moments, which
        # restore into any number of shards, as the table does.
        self.logical_slots = []
        slots = iter(self.slots)
        for v in variables:
            pairs = [next(slots) for _ in _shards(v)]
            if pairs[0] is None:
                continue
            if len(pairs) == 1:
                self.logical_slots.append(list(pairs[0]))
            else:
                self.logical_slots.append(
                    [_ShardedVariable([p[k] for p in pairs]) for k in range(2)]
                )

    def apply(self, gradients) -> None:
        """Applies one gradient per shard, in the order of ``self.variables``."""
        import tensorflow as tf

        from tf_sampling.optimizers import adam_rows

        betas = (self.beta_1, self.beta_2)
        step = self.iterations.assign_add(1)
        alpha = adam_rows.step_size(tf.constant(self.learning_rate), *betas, step)
        for var, slots, grad in zip(self.variables, self.slots, gradients, strict=True):
            if grad is None:
                continue
            if slots is None:
                if isinstance(grad, tf.IndexedSlices):
                    var.scatter_sub(
                        tf.IndexedSlices(self.learning_rate * grad.values, grad.indices)
                    )
                else:
                    var.assign_sub(self.learning_rate * grad)
                continue
            m, v = slots
            if isinstance(grad, tf.IndexedSlices):
                # All on the shard's PS (colocated with its resources): read
                # the touched rows, write them back.
                summed, squared = adam_rows.sum_lookups(grad, "summed")
                ids = summed.indices
                m_rows, v_rows = adam_rows.moments(
                    tf.gather(m, ids), tf.gather(v, ids), summed.values, squared, *betas
                )
                m.scatter_update(tf.IndexedSlices(m_rows, ids))
                v.scatter_update(tf.IndexedSlices(v_rows, ids))
                var.scatter_sub(
                    tf.IndexedSlices(adam_rows.decrement(m_rows, v_rows, alpha, self.epsilon), ids)
                )
            else:
                # The step from this worker's own new moments, not from m and v
                # read back: another worker may have written either meanwhile,
                # and m from one with v from another can divide a large m by a
                # near-zero v (a diverged run, seen once in ~20).
                m_new, v_new = adam_rows.moments(
                    m.read_value(), v.read_value(), grad, tf.square(grad), *betas
                )
                m.assign(m_new)
                v.assign(v_new)
                var.assign_sub(adam_rows.decrement(m_new, v_new, alpha, self.epsilon))

    def checkpoint_items(self) -> dict:
        """The optimizer state as ``tf.train.Checkpoint`` keyword arguments."""
        return {"iterations": self.iterations, "slots": self.logical_slots}


def random_data(num_classes: int, in_dim: int, batch: int, seed: int):
    """An endless stream of random features and uniform labels (O(batch) memory; benchmarks)."""
    import tensorflow as tf

    def make(step):
        labels = tf.random.stateless_uniform(
            [batch],
            seed=tf.stack([tf.cast(seed, tf.int64), step]),
            maxval=num_classes,
            dtype=tf.int64,
        )
        return tf.random.stateless_normal(
            [batch, in_dim], seed=tf.stack([tf.cast(seed, tf.int64), step + 1])
        ), labels

    return tf.data.Dataset.range(2**62).map(make)


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a process in MiB, or None off Linux."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def teacher_data(num_classes: int, in_dim: int, batch: int, seed: int):
    """An endless ``tf.data`` stream: labels and features ``teacher[label] + noise``."""
    import tensorflow as tf

    # One teacher for every stream (training, per worker, and evaluation).
    teacher = tf.random.stateless_normal([num_classes, in_dim], seed=[1234, 0])
    # Zipf-like labels: class c has weight 1 / (c + 10).
    logits = -tf.math.log(tf.range(num_classes, dtype=tf.float32) + 10.0)

    def make(step):
        labels = tf.random.stateless_categorical(
            logits[None], batch, seed=tf.stack([tf.cast(seed, tf.int64) + 1, step])
        )[0]
        noise = tf.random.stateless_normal(
            [batch, in_dim], seed=tf.stack([tf.cast(seed, tf.int64) + 2, step])
        )
        return tf.gather(teacher, labels) + noise, labels

    return tf.data.Dataset.range(2**62).map(make)


class Trainer:
    """Model, optimizer, sampler and steps; the same code under any strategy.

    ``hidden = features @ projection``; sampled softmax over the class table.
    """

    def __init__(self, strategy, args):
        import tensorflow as tf

        import tf_sampling

        self.strategy, self.args = strategy, args
        v, d = args.num_classes, args.dim

        def table_init(shape, dtype=tf.float32, partition_shape=None, partition_offset=None):
            # Each shard draws its own rows on its PS: no [num_classes, dim]
            # value is ever built on the chief or sent over the network.
            shape = partition_shape or shape
            offset = partition_offset[0] if partition_offset else 0
            # One op that writes the scaled values (normal(0, 0.05) truncated
            # at 2 sigma): `stateless_normal(stddev=...)` runs `draw * stddev
            # + mean` as separate eager ops on the PS, three shard-sized
            # tensors at once (a PS peaked at 3.7x its shard; now ~1x).
            means, stddevs, minvals, maxvals = (tf.constant(c, dtype) for c in (0, 0.05, -0.1, 0.1))
            return tf.random.stateless_parameterized_truncated_normal(
                shape, [offset, 3], means, stddevs, minvals, maxvals
            )

        def zeros_init(shape, dtype=tf.float32, partition_shape=None, partition_offset=None):
            return tf.zeros(partition_shape or shape, dtype)

        with strategy.scope():
            self.weights = tf.Variable(
                _Init(table_init, [v, d]), shape=[v, d], dtype=tf.float32, name="class_weights"
            )
            self.biases = tf.Variable(
                _Init(zeros_init, [v]), shape=[v], dtype=tf.float32, name="class_biases"
            )
            self.projection = tf.Variable(
                tf.random.stateless_normal([args.in_dim, d], seed=[5, 5]) / np.sqrt(args.in_dim),
                name="projection",
            )
            self.sampler = None
            if args.sampler == "learned_unigram":
                # Its count tree and stream offset are read by one op: both on one PS.
                with strategy.extended.colocate_vars_with(self.projection):
                    self.sampler = tf_sampling.samplers.LearnedUnigramSampler(
                        v, unique=True, seed=11
                    )
        self.trainable = [self.weights, self.biases, self.projection]
        self.optimizer = ShardedLazyAdam(
            strategy,
            self.trainable,
            learning_rate=args.learning_rate,
            slots=args.optimizer == "adam",
        )

    def sampled_values(self, labels):
        import tensorflow as tf

        if self.sampler is not None:
            return self.sampler.sample(labels, 1, self.args.num_sampled)
        return tf.random.log_uniform_candidate_sampler(
            labels, 1, self.args.num_sampled, True, self.args.num_classes
        )

    def replica_step(self, features, labels):
        import tensorflow as tf

        import tf_sampling

        labels = labels[:, None]
        with tf.GradientTape() as tape:
            hidden = tf.matmul(features, self.projection)
            per_example = tf_sampling.nn.sampled_softmax_loss(
                self.weights,
                self.biases,
                labels,
                hidden,
                num_sampled=self.args.num_sampled,
                num_classes=self.args.num_classes,
                sampled_values=self.sampled_values(labels),
                partition_strategy="div",
            )
            # tf.distribute's convention: the mean over the global batch.
            loss = tf.nn.compute_average_loss(per_example)
        shards = self.optimizer.variables
        self.optimizer.apply(tape.gradient(loss, shards))
        return loss

    def full_loss(self, features, labels):
        """Exact full-softmax cross-entropy (mean over the batch), class block by block."""
        import tensorflow as tf

        import tf_sampling

        hidden = tf.matmul(features, self.projection)
        return tf.reduce_mean(
            tf_sampling.nn.full_softmax_cross_entropy(
                self.weights,
                self.biases,
                labels[:, None],
                hidden,
                num_classes=self.args.num_classes,
                partition_strategy="div",
            )
        )

    def checkpoint(self):
        import tensorflow as tf

        items = dict(
            weights=self.weights,
            biases=self.biases,
            projection=self.projection,
            optimizer=tf.train.Checkpoint(**self.optimizer.checkpoint_items()),
        )
        if self.sampler is not None:
            items["sampler"] = self.sampler
        return tf.train.Checkpoint(**items)


class _Init:
    """A callable initial value that the strategy can call once per shard."""

    def __init__(self, fn, shape):
        self.fn, self.shape = fn, shape

    def __call__(self, partition_shape=None, partition_offset=None):
        return self.fn(
            self.shape, partition_shape=partition_shape, partition_offset=partition_offset
        )


def restore_single_device(checkpoint_path: str, args) -> dict:
    """Restores the trained table and projection into plain one-device variables.

    Returns:
      dict of NumPy arrays: ``weights [num_classes, dim]``, ``biases``,
      ``projection`` (a ``ShardedVariable`` checkpoint restores into any layout).
    """
    import tensorflow as tf

    with (
        tf.device("/job:chief/task:0/device:CPU:0") if args.in_cluster else contextlib.nullcontext()
    ):
        weights = tf.Variable(tf.zeros([args.num_classes, args.dim]))
        biases = tf.Variable(tf.zeros([args.num_classes]))
        projection = tf.Variable(tf.zeros([args.in_dim, args.dim]))
    checkpoint = tf.train.Checkpoint(weights=weights, biases=biases, projection=projection)
    checkpoint.restore(checkpoint_path).expect_partial()
    return {"weights": weights.numpy(), "biases": biases.numpy(), "projection": projection.numpy()}


def numpy_full_softmax(values: dict, features: np.ndarray, labels: np.ndarray) -> float:
    """The exact mean softmax cross-entropy in float64 NumPy."""
    hidden = features.astype(np.float64) @ values["projection"].astype(np.float64)
    logits = hidden @ values["weights"].T.astype(np.float64) + values["biases"]
    top = logits.max(-1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
    return float(np.mean(log_z - logits[np.arange(len(labels)), labels]))


def train(args) -> dict:
    """Starts the cluster, trains, checkpoints, evaluates; always stops the cluster."""
    cluster = cluster_spec(args.workers, args.ps)
    with LocalCluster(cluster, start_timeout=args.start_timeout) as local:
        import tensorflow as tf

        strategy = chief_strategy(cluster, args.num_classes)
        coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
        trainer = Trainer(strategy, args)
        checkpoint = trainer.checkpoint()
        manager = tf.train.CheckpointManager(checkpoint, args.checkpoint_dir, max_to_keep=None)
        restored_from = None
        if args.restore:
            restored_from = tf.train.latest_checkpoint(args.restore)
            checkpoint.restore(restored_from).assert_existing_objects_matched()
        start_step = int(trainer.optimizer.iterations.numpy())

        def dataset_fn(context):
            # One stream per worker (its pipeline id), each batch of args.batch.
            make = random_data if args.bench else teacher_data
            return make(
                args.num_classes, args.in_dim, args.batch, seed=100 + context.input_pipeline_id
            )

        per_worker = coordinator.create_per_worker_dataset(
            lambda: strategy.distribute_datasets_from_function(dataset_fn)
        )
        iterator = iter(per_worker)

        @tf.function
        def train_step(iterator):
            features, labels = next(iterator)
            return strategy.run(trainer.replica_step, args=(features, labels))

        @tf.function
        def eval_step(features, labels):
            return strategy.run(trainer.full_loss, args=(features, labels))

        if args.bench:
            return bench(args, coordinator, train_step, iterator, trainer, local)
        eval_features, eval_labels = next(
            iter(teacher_data(args.num_classes, args.in_dim, args.eval_batch, seed=7))
        )
        loss_before = float(
            coordinator.schedule(eval_step, args=(eval_features, eval_labels)).fetch()
        )
        began = time.monotonic()
        killed = False
        for step in range(args.steps):
            coordinator.schedule(train_step, args=(iterator,))
            if args.kill_worker_at is not None and step == args.kill_worker_at and args.workers > 1:
                # Kill a worker mid-run: its in-flight steps are rescheduled on
                # the others; it rejoins when it comes back.
                time.sleep(0.5)
                local.kill_task("worker", args.workers - 1)
                killed = True
            if killed and step == args.kill_worker_at + args.steps // 4:
                local.start_task("worker", args.workers - 1)
            if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0:
                coordinator.join()
                manager.save(checkpoint_number=start_step + step + 1)
        coordinator.join()
        seconds = time.monotonic() - began
        final_path = manager.save(checkpoint_number=start_step + args.steps)
        loss_after = float(
            coordinator.schedule(eval_step, args=(eval_features, eval_labels)).fetch()
        )
        # The same evaluation on one device in this (chief) process, from the checkpoint.
        chief_eval = trainer.full_loss(eval_features, eval_labels)
        values = restore_single_device(final_path, args)
        result = {
            "workers": args.workers,
            "ps": args.ps,
            "steps": args.steps,
            "steps_per_second": args.steps / seconds,
            "iterations": int(trainer.optimizer.iterations.numpy()),
            "start_step": start_step,
            "restored_from": restored_from,
            "loss_before": loss_before,
            "loss_after": loss_after,
            "chief_loss_after": float(chief_eval),
            "numpy_loss_after": numpy_full_softmax(
                values, eval_features.numpy(), eval_labels.numpy()
            ),
            "table_type": type(trainer.weights).__name__,
            "table_shards": [
                {"device": s.device, "rows": int(s.shape[0])} for s in _shards(trainer.weights)
            ],
            "bias_shards": [s.device for s in _shards(trainer.biases)],
            "slot_devices": [[s.device for s in pair] for pair in trainer.optimizer.slots if pair],
            "sampler_device": None
            if trainer.sampler is None
            else trainer.sampler.tree.value.device,
            "sampler_counts_sum": None
            if trainer.sampler is None
            else int(tf.reduce_sum(trainer.sampler.counts())),
            "checkpoints": manager.checkpoints,
            "killed_worker": killed,
            "task_pids": local.pids(),
        }
    return result


def bench(args, coordinator, train_step, iterator, trainer, local) -> dict:
    """Steps per second after ``args.warmup`` steps, and the tasks' peak memory."""
    for _ in range(args.warmup):
        coordinator.schedule(train_step, args=(iterator,))
    coordinator.join()
    began = time.monotonic()
    for _ in range(args.steps):
        coordinator.schedule(train_step, args=(iterator,))
    coordinator.join()
    seconds = time.monotonic() - began
    return {
        "workers": args.workers,
        "ps": args.ps,
        "num_classes": args.num_classes,
        "dim": args.dim,
        "steps": args.steps,
        "seconds": seconds,
        "steps_per_second": args.steps / seconds,
        "iterations": int(trainer.optimizer.iterations.numpy()),
        "table_shards": [int(s.shape[0]) for s in _shards(trainer.weights)],
        "worker_peak_rss_mb": [
            peak_rss_mb(local.processes[("worker", k)].pid) for k in range(args.workers)
        ],
        "ps_peak_rss_mb": [peak_rss_mb(local.processes[("ps", k)].pid) for k in range(args.ps)],
        "chief_peak_rss_mb": peak_rss_mb(os.getpid()),
        "task_pids": local.pids(),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--serve",
        nargs=2,
        metavar=("JOB", "INDEX"),
        help="run this task's server (TF_CONFIG) until killed",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--num-classes", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--in-dim", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=512)
    parser.add_argument("--num-sampled", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument(
        "--sampler", choices=["log_uniform", "learned_unigram"], default="learned_unigram"
    )
    parser.add_argument("--checkpoint-dir", default="/tmp/tf_sampling_ps_ckpt")
    parser.add_argument("--checkpoint-every", type=int, default=20)
    parser.add_argument("--restore", default=None, help="checkpoint directory to resume from")
    parser.add_argument(
        "--kill-worker-at", type=int, default=None, help="kill the last worker at this step"
    )
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument(
        "--bench", action="store_true", help="random data, no evaluation or checkpoints: time steps"
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (--bench)")
    parser.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default="adam",
        help="sgd: no slots (less PS memory)",
    )
    args = parser.parse_args(argv)
    args.in_cluster = True
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.serve:
        serve(json.loads(os.environ["TF_CONFIG"])["cluster"], args.serve[0], int(args.serve[1]))
        return
    result = train(args)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{args.workers} workers, {args.ps} PS: {result['table_type']} in shards on "
        f"{[s['device'] for s in result['table_shards']]}"
    )
    print(
        f"exact full-softmax loss: {result['loss_before']:.4f} -> {result['loss_after']:.4f} "
        f"(one device, NumPy: {result['numpy_loss_after']:.4f}); "
        f"{result['steps_per_second']:.1f} steps/s; checkpoints: {result['checkpoints']}"
    )


if __name__ == "__main__":
    main()
