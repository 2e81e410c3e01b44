"""tf_keras ``model.fit`` under ``ParameterServerStrategy`` on a loopback cluster.

Runs ``examples/distributed_ps_tf_keras.py`` (2 workers, 2 PS, one process
per task, all killed by the example) in its own process group, killed as a
whole on the way out. Skipped where tf_keras is not installed: the project
does not install it (it must match the installed TensorFlow exactly, and its
pip requirement would pull in the ``tensorflow`` distribution); ``pip install
--no-deps tf_keras==<TF's version>`` enables the test.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT
from tests.test_distributed import _alive, _run

TF_KERAS_EXAMPLE = ROOT / "examples" / "distributed_ps_tf_keras.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is None, reason="tf_keras is not installed"
)


@pytest.mark.slow
def test_tf_keras_fit_trains_a_sharded_table_on_the_ps_tasks():
    r = _run([str(TF_KERAS_EXAMPLE), "--json", "--start-timeout=240"], timeout=420)
    assert r["tf_keras"]
    assert not [pid for pid in r["task_pids"] if _alive(pid)], "cluster tasks left running"
    # The table and its biases: ShardedVariables, one shard on each PS task.
    assert r["table_type"] == "ShardedVariable"
    ps = {f"/job:ps/replica:0/task:{k}/device:CPU:0" for k in range(2)}
    assert len(r["table_shards"]) == 2 and set(r["table_shards"]) == ps
    assert r["bias_shards"] == r["table_shards"]
    # Adam's m and v of both: sharded the same way, shard k next to shard k.
    assert r["table_slot_shards"] == [r["table_shards"]] * 4
    # Row-sparse gradients reached the optimizer; every step ran once.
    assert "IndexedSlices" in r["gradient_types"]
    assert r["iterations"] == 20
    # The exact full-softmax loss of the training set went down.
    assert r["loss_after"] < r["loss_before"] - 0.1
