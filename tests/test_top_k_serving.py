"""Top-k predictions from the head's table in blocks, and the top-k SavedModel export."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_sampling.layers as tsl
from tests.layer_tables import dense_table

V, D = 53, 6


def _model(**head_kwargs):
    inputs = keras.Input((D,), name="features")
    head = tsl.SampledSoftmax(V, 4, bias_initializer="random_normal", **head_kwargs)
    return keras.Model(inputs, head(keras.layers.Dense(D, name="trunk")(inputs))), head


def _np_top_k(logits, k):
    # Best first; ties to the lower id (a stable sort of the negated scores).
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    return order, np.take_along_axis(logits, order, -1)


@pytest.mark.parametrize(
    "head_kwargs",
    [{}, {"chunk_size": 16, "num_shards": 3, "partition_strategy": "mod"}, {"chunk_size": 7}],
    ids=["one-shot", "mod-shards-chunked", "chunk-not-dividing"],
)
def test_top_k_model_predicts_the_exact_best_classes(head_kwargs):
    model, head = _model(**head_kwargs)
    x = np.random.default_rng(0).normal(size=(9, D)).astype("float32")
    got = tsl.top_k_model(model, 5).predict(x, verbose=0)
    hidden = keras.Model(model.inputs, head.input).predict(x, verbose=0).astype(np.float64)
    w, b = dense_table(head)
    ids, scores = _np_top_k(hidden @ w.T + b, 5)
    np.testing.assert_array_equal(got["ids"], ids)
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-5, atol=1e-6)
    assert got["ids"].dtype == np.int32 and got["scores"].shape == (9, 5)
    # The head's own top_k agrees, for [batch, time, dim] inputs too.
    seq = np.stack([hidden, hidden[::-1]], 1).astype("float32")
    both = head.top_k(seq, k=5)
    np.testing.assert_array_equal(both.ids.numpy()[:, 0], ids)
    np.testing.assert_array_equal(both.ids.numpy()[:, 1], ids[::-1])


def test_ties_go_to_the_lower_class_id():
    head = tsl.SampledSoftmax(
        V, 4, kernel_initializer="zeros", bias_initializer="zeros", chunk_size=8
    )
    best = head.top_k(np.ones((2, D), "float32"), k=10)
    np.testing.assert_array_equal(best.ids.numpy(), np.tile(np.arange(10), (2, 1)))


def test_bad_k_and_models_without_one_head():
    model, head = _model()
    with pytest.raises(ValueError, match="k"):
        tsl.top_k_model(model, V + 1)
    with pytest.raises(TypeError, match="k"):
        tsl.TopKPredictions(head, 2.0)
    with pytest.raises(TypeError, match="head"):
        tsl.TopKPredictions(keras.layers.Dense(3), 2)
    plain = keras.Sequential([keras.Input((D,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="exactly one"):
        tsl.top_k_model(plain, 2)


def test_top_k_savedmodel_serves_without_tf_sampling_and_with_saved_model_cli(tmp_path):
    model, head = _model(chunk_size=16)
    x = np.random.default_rng(1).normal(size=(4, D)).astype("float32")
    expected = tsl.top_k_model(model, 3).predict(x, verbose=0)
    path = tmp_path / "top_k"
    tsl.export_top_k(model, str(path), 3)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"served = tf.saved_model.load({str(path)!r})\n"
        "out = served.signatures['serving_default'](tf.constant(np.load(sys.argv[1])))\n"
        "print(json.dumps({'ids': out['ids'].numpy().tolist(),"
        " 'scores': out['scores'].numpy().tolist(),"
        " 'imported': any(m.startswith('tf_sampling') for m in sys.modules)}))\n"
    )
    # A fresh process that cannot import this package at all.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    served = subprocess.run(
        [sys.executable, "-I", "-c", code, str(tmp_path / "x.npy")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["imported"] is False
    np.testing.assert_array_equal(result["ids"], expected["ids"])
    np.testing.assert_allclose(result["scores"], expected["scores"], rtol=1e-6)
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    rows = json.dumps(x[:2].tolist())
    ran = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(path),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            f"features={rows}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Result for output key ids" in ran.stdout
    first_ids = ran.stdout.split("Result for output key ids:")[1].split("Result")[0]
    assert [int(v) for v in first_ids.replace("[", " ").replace("]", " ").split()] == (
        np.asarray(expected["ids"][:2]).ravel().tolist()
    )
