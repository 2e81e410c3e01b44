"""tf.distribute: MirroredStrategy over 2 logical CPUs, and a loopback parameter-server cluster.

Everything that needs its own TensorFlow device setup or cluster runs in a
child process with a timeout (logical devices must be configured before
TensorFlow initializes them; a cluster needs one process per task). The
cluster driver is ``examples/distributed_ps.py``, which kills every process it
starts, even on failure; the tests check that none is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

PS_EXAMPLE = ROOT / "examples" / "distributed_ps.py"


def _run(args: list[str], timeout: float) -> dict:
    """Runs a Python child with the source tree importable; returns its last stdout line as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- MirroredStrategy


@pytest.fixture(scope="module")
def mirrored():
    return _run([str(ROOT / "tests" / "distributed_mirrored_check.py")], timeout=300)


@pytest.mark.parametrize("kind", ["softmax", "nce"])
def test_mirrored_loss_and_gradients_equal_one_device(mirrored, kind):
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
        model.compile("adam", loss=tf_sampling.losses.SampledSoftmaxLoss())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 30, 32)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logits = model.predict(x, verbose=0)
    z = logits - logits.max(-1, keepdims=True)
    expected = np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(32), y])
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)
