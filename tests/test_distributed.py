"""tf.distribute: MirroredStrategy over 2 logical CPUs, and a loopback parameter-server cluster.

Everything that needs its own TensorFlow device setup or cluster runs in a
child process with a timeout (logical devices must be configured before
TensorFlow initializes them; a cluster needs one process per task). The
cluster driver is ``examples/distributed_ps.py``, which kills every process it
starts, even on failure; the tests check that none is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

PS_EXAMPLE = ROOT / "examples" / "distributed_ps.py"


def _run(args: list[str], timeout: float) -> dict:
    """Runs a Python child with the source tree importable; returns its last stdout line as JSON.

    The child leads its own process group, and the whole group is killed on the
    way out: on a timeout, the tasks a cluster driver started die with it.
    """
    # The source tree first; an existing PYTHONPATH (e.g. tf_keras) after it.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, out[-2000:] + err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- MirroredStrategy


@pytest.fixture(scope="module")
def mirrored():
    return _run([str(ROOT / "tests" / "distributed_mirrored_check.py")], timeout=300)


@pytest.mark.parametrize("kind", ["softmax", "nce", "rank"])
def test_mirrored_loss_and_gradients_equal_one_device(mirrored, kind):
    # "rank": RankSampledSoftmax scores its candidates over the global batch
    # (replicas combine their local log-sum-exps), so each replica keeps the
    # candidates one device keeps.
    two, one = mirrored[f"grad_{kind}"]["mirrored"], mirrored[f"grad_{kind}"]["one"]
    assert two["replicas"] == 2 and one["replicas"] == 1
    # Keras scales each replica's mean by 1/replicas: the sum over replicas is
    # the mean over the global batch, as on one device.
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-6)
    for g2, g1 in zip(two["grads"], one["grads"], strict=True):
        g1 = np.asarray(g1)
        assert np.abs(g1).max() > 0
        np.testing.assert_allclose(np.asarray(g2), g1, rtol=1e-5, atol=1e-7)
    # The tape gave row-sparse gradients for the class table on every replica.
    assert two["grad_types"] == ["IndexedSlices"] and one["grad_types"] == ["IndexedSlices"]


def test_mirrored_fit_with_lazy_adam_equals_one_device(mirrored):
    two, one = mirrored["fit"]["mirrored"], mirrored["fit"]["one"]
    for w2, w1, w0 in zip(two["weights"], one["weights"], one["initial"], strict=True):
        w2, w1 = np.asarray(w2), np.asarray(w1)
        assert np.abs(w1 - np.asarray(w0)).max() > 1e-3  # training moved every variable
        np.testing.assert_allclose(w2, w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two["initial"][0], one["initial"][0])
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    assert one["loss"][-1] < one["loss"][0]
    np.testing.assert_allclose(two["evaluate"], one["evaluate"], rtol=1e-5)
    # The class table's all-gathered gradient reaches LazyAdam still sparse
    # (the Dense kernel's is a dense tensor).
    assert "IndexedSlices" in two["update_types"]


def test_fit_and_evaluate_under_a_strategy_scope():
    # Keras builds the compiled loss of a model made under a strategy on
    # untagged placeholders first; the loss must let that pass (it raised
    # "could not find its output layer" before).
    import keras
    import tensorflow as tf

    import tf_sampling

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        inputs = keras.Input((6,))
        head = tf_sampling.layers.SampledSoftmax(30, 5, seed=1)
        model = keras.Model(inputs, head(keras.layers.Dense(4)(inputs)))
        model.compile(
            "adam",
            loss=tf_sampling.losses.SampledSoftmaxLoss(),
            metrics=[tf_sampling.metrics.Perplexity(), tf_sampling.metrics.TopKAccuracy(k=3)],
        )
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 30, 32)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logits = model.predict(x, verbose=0)
    z = logits - logits.max(-1, keepdims=True)
    expected = np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(32), y])
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)
    ce = np.log(np.exp(z).sum(-1)) - z[np.arange(32), y]
    np.testing.assert_allclose(result["perplexity"], np.exp(ce.mean()), rtol=1e-5)
    top3 = np.argsort(-logits, -1)[:, :3]
    np.testing.assert_allclose(result["top_3_accuracy"], np.mean((top3 == y[:, None]).any(-1)))


# --------------------------------------------------------------------------- parameter servers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cluster(tmp, *extra, timeout=420) -> dict:
    args = [str(PS_EXAMPLE), "--json", "--checkpoint-dir", str(tmp), "--start-timeout", "180"]
    result = _run([*args, *extra], timeout=timeout)
    assert not [pid for pid in result["task_pids"] if _alive(pid)], "cluster tasks left running"
    return result


@pytest.fixture(scope="module")
def ps_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ps_ckpt")
    result = _cluster(directory, "--workers", "2", "--ps", "2", "--steps", "40")
    return directory, result


@pytest.mark.slow
def test_ps_cluster_trains_a_sharded_table_and_matches_one_device(ps_run):
    _, r = ps_run
    # A short run lowers the exact full-softmax loss on held-out batches.
    assert r["loss_after"] < r["loss_before"] - 0.3
    # The class table is a ShardedVariable with one shard per PS task, its
    # biases and Adam slots on the same tasks.
    assert r["table_type"] == "ShardedVariable"
    devices = [s["device"] for s in r["table_shards"]]
    assert len(devices) == 2 and [s["rows"] for s in r["table_shards"]] == [1000, 1000]
    assert devices == [f"/job:ps/replica:0/task:{k}/device:CPU:0" for k in range(2)]
    assert r["bias_shards"] == devices
    assert [m for m, _ in r["slot_devices"][:4]] == devices * 2
    assert all(m == v for m, v in r["slot_devices"])
    # Evaluation on a worker = on the chief = NumPy on the checkpoint restored
    # into plain one-device variables.
    np.testing.assert_allclose(r["loss_after"], r["chief_loss_after"], rtol=1e-6)
    np.testing.assert_allclose(r["loss_after"], r["numpy_loss_after"], rtol=1e-5)
    # Every scheduled step ran once; the one shared sampler counted every
    # worker's labels (40 steps x batch 64).
    assert r["iterations"] == 40
    assert r["sampler_device"].startswith("/job:ps/")
    assert r["sampler_counts_sum"] == 40 * 64


@pytest.mark.slow
def test_ps_checkpoint_restores_into_other_worker_and_shard_counts(ps_run, tmp_path):
    directory, first = ps_run
    r = _cluster(
        tmp_path, "--restore", str(directory), "--workers", "1", "--ps", "3", "--steps", "8"
    )
    assert r["restored_from"].endswith("ckpt-40")
    assert r["start_step"] == 40 and r["iterations"] == 48
    assert len(r["table_shards"]) == 3
    # Restored exactly: the same held-out loss the first run ended with.
    np.testing.assert_allclose(r["loss_before"], first["loss_after"], rtol=1e-6)
    assert r["sampler_counts_sum"] == 48 * 64
    np.testing.assert_allclose(r["loss_after"], r["numpy_loss_after"], rtol=1e-5)


@pytest.mark.slow
def test_ps_worker_killed_mid_training_recovers_without_losing_checkpoints(tmp_path):
    r = _cluster(
        tmp_path,
        "--steps",
        "40",
        "--checkpoint-every",
        "10",
        "--kill-worker-at",
        "12",
        "--sampler",
        "log_uniform",
    )
    assert r["killed_worker"]
    # The killed worker's steps were rescheduled: all 40 ran, every checkpoint exists.
    assert r["iterations"] == 40
    assert [p.rsplit("-", 1)[1] for p in r["checkpoints"]] == ["10", "20", "30", "40"]
    assert all(os.path.exists(p + ".index") for p in r["checkpoints"])
    assert r["loss_after"] < r["loss_before"]


def _load_ps_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("distributed_ps", PS_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sharded_lazy_adam_on_shards_equals_lazy_adam_on_the_whole_table():
    # The PS example's optimizer, on a table in 2 shards (a ShardedVariable),
    # against tf_sampling's Keras LazyAdam on the same table in one piece.
    import keras
    import tensorflow as tf

    import tf_sampling
    from tf_sampling import optimizers

    ps = _load_ps_example()
    rng = np.random.default_rng(3)
    classes, dim = 12, 4
    init_w = rng.normal(size=(classes, dim)).astype("float32")
    init_b = rng.normal(size=classes).astype("float32")
    batches = [
        (rng.normal(size=(5, dim)).astype("float32"), rng.integers(0, classes, (5, 1)))
        for _ in range(3)
    ]
    candidates = [rng.choice(classes, 4, replace=False) for _ in batches]
    sharded_w = tf.__internal__.distribute.ShardedVariable(
        [tf.Variable(init_w[:7]), tf.Variable(init_w[7:])]
    )
    sharded_b = tf.__internal__.distribute.ShardedVariable(
        [tf.Variable(init_b[:7]), tf.Variable(init_b[7:])]
    )
    ours = ps.ShardedLazyAdam(
        tf.distribute.get_strategy(), [sharded_w, sharded_b], learning_rate=0.1
    )
    whole_w, whole_b = keras.Variable(init_w), keras.Variable(init_b)
    reference = optimizers.LazyAdam(learning_rate=0.1, second_moment="summed")  # TF-Addons'

    def loss(weights, biases, x, y, sampled):
        q = tf.fill([classes], 0.25)
        values = (tf.constant(sampled, tf.int64), tf.gather(q, y), tf.gather(q, sampled))
        return tf.reduce_mean(
            tf_sampling.nn.sampled_softmax_loss(
                weights, biases, y, x, 4, classes, sampled_values=values, partition_strategy="div"
            )
        )

    for (x, y), sampled in zip(batches, candidates, strict=True):
        with tf.GradientTape() as tape:
            value = loss(sharded_w, sharded_b, x, y, sampled)
        grads = tape.gradient(value, ours.variables)
        assert all(isinstance(g, tf.IndexedSlices) for g in grads)
        ours.apply(grads)
        with tf.GradientTape() as tape:
            value = loss(whole_w, whole_b, x, y, sampled)
        reference.apply(tape.gradient(value, [whole_w, whole_b]), [whole_w, whole_b])
    np.testing.assert_allclose(
        np.concatenate([v.numpy() for v in sharded_w.variables]),
        whole_w.numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        np.concatenate([v.numpy() for v in sharded_b.variables]),
        whole_b.numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert np.abs(whole_w.numpy() - init_w).max() > 1e-2


@pytest.mark.slow
def test_mirrored_example_runs_fits_evaluates_and_saves():
    r = _run(
        [
            str(ROOT / "examples" / "distributed_mirrored.py"),
            "--json",
            "--num-classes",
            "500",
            "--examples",
            "1024",
            "--epochs",
            "2",
        ],
        timeout=300,
    )
    assert r["replicas"] == 2
    assert r["sampled_loss"][1] < r["sampled_loss"][0]
    assert np.isfinite(r["exact"]["loss"]) and 0 <= r["exact"]["top_5_accuracy"] <= 1
    assert r["reloaded_logits_equal"]
