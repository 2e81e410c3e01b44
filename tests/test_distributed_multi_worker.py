"""Keras 3 ``fit`` under ``MultiWorkerMirroredStrategy``: 2 worker processes on loopback.

The driver is ``examples/distributed_multi_worker.py``: it starts the two
workers (one ``TF_CONFIG`` each, ring collectives on CPU), trains the same
model on one device meanwhile, and kills every worker it started. The test
runs it in its own process group (``tests.test_distributed._run``), so that
on a timeout the driver and its workers are killed together.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_distributed import _alive, _run

EXAMPLE = ROOT / "examples" / "distributed_multi_worker.py"
EXAMPLES, BATCH, EPOCHS = 64, 16, 3


@pytest.fixture(scope="module")
def multi_worker():
    return _run(
        [
            str(EXAMPLE),
            "--json",
            "--compare-one-device",
            "--report-weights",
            "--workers=2",
            "--num-classes=50",
            "--num-sampled=8",
            "--in-dim=8",
            "--dim=6",
            f"--examples={EXAMPLES}",
            f"--batch-size={BATCH}",
            f"--epochs={EPOCHS}",
            # A wrong loss scaling shows up in the reported loss and, though
            # Adam is nearly blind to the gradient's scale, in the weights
            # (the workers' loss doubled on purpose: 3.1e-4 away, measured).
            "--learning-rate=0.05",
            "--timeout=240",
        ],
        timeout=300,
    )


@pytest.mark.slow
def test_multi_worker_fit_equals_one_device(multi_worker):
    workers, one = multi_worker["workers"], multi_worker["one_device"]
    assert [w["task"]["index"] for w in workers] == [0, 1]
    assert all(w["replicas"] == 2 for w in workers) and one["replicas"] == 1
    assert not [pid for pid in multi_worker["worker_pids"] if _alive(pid)]
    # Same start, every variable moved, and the same end as one device on the
    # global batches; both workers hold the same (mirrored) weights.
    for w0, w1, init, init_one, ref in zip(
        workers[0]["weights"],
        workers[1]["weights"],
        workers[0]["initial"],
        one["initial"],
        one["weights"],
        strict=True,
    ):
        np.testing.assert_array_equal(init, init_one)
        if np.asarray(init).dtype.kind == "f":  # not the sampler's int64 seed and counter
            assert np.abs(np.asarray(ref) - np.asarray(init)).max() > 1e-3
        np.testing.assert_allclose(w0, ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(w0, w1)
    # The reported loss (Keras' mean over the global batch) matches per epoch.
    for w in workers:
        np.testing.assert_allclose(w["loss"], one["loss"], rtol=1e-5)
    assert one["loss"][-1] < one["loss"][0]


@pytest.mark.slow
def test_multi_worker_gradients_sparse_and_samples_in_lockstep(multi_worker):
    steps = EPOCHS * EXAMPLES // BATCH
    for entry in [*multi_worker["workers"], multi_worker["one_device"]]:
        # The class table's gradient reached LazyAdam as IndexedSlices
        # (all-gathered across workers); the Dense kernel's is dense.
        assert "IndexedSlices" in entry["gradient_types"]
        # One sampler call per replica and step: every replica and the one
        # device run drew step n's classes from the same (seed, n).
        assert entry["sampler_calls"] == [steps]
