"""Save, reload and serve in a fresh process: ``.keras`` files and ``model.export`` SavedModels.

Fresh Python processes are slow to start, so one child process checks every
model, and one ``saved_model_cli run`` checks the command-line tool.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm

ROOT = pathlib.Path(__file__).resolve().parents[1]
SO_BUILT = any((ROOT / "tf_sampling" / "ops").glob("*.so"))
# CI builds the op library, so there these tests must run, not skip.
NEEDS_SO = pytest.mark.skipif(
    not SO_BUILT and not os.environ.get("CI"),
    reason="learned-unigram op library not built (run scripts/setup.sh)",
)

CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
import keras

work = sys.argv[1]
names = json.loads(sys.argv[2])
results = {}
# SavedModels first, before anything of tf_sampling is imported: serving needs
# neither this package nor its op library.
for name in names:
    x = np.load(f"{work}/{name}_x.npy")
    served = tf.saved_model.load(f"{work}/{name}_export")
    by_signature = served.signatures["serving_default"](tf.constant(x))
    results[name] = {
        "serve": served.serve(x).numpy().tolist(),
        "signature": list(by_signature.values())[0].numpy().tolist(),
        "tf_sampling_imported": "tf_sampling" in sys.modules,
    }
import tf_sampling.layers  # registers the classes; no custom_objects needed
for name in names:
    x = np.load(f"{work}/{name}_x.npy")
    model = keras.models.load_model(f"{work}/{name}.keras")
    head = model.layers[-1]
    results[name]["predict"] = model.predict(x, verbose=0).tolist()
    loss = keras.losses.get(model.loss)  # a name, class or instance after loading
    results[name]["loss"] = type(loss).__name__
    results[name]["config"] = head.get_config()
    counts = getattr(head.sampler, "tree", None)
    results[name]["counts"] = None if counts is None else counts.numpy().tolist()
print("RESULTS" + json.dumps(results))
"""


def _run(args, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _models():
    rng = np.random.default_rng(0)
    models = {}

    def classifier(head, loss, dim=6):
        inputs = keras.Input((dim,), name="x")
        model = keras.Model(inputs, head(keras.layers.Dense(8, activation="tanh")(inputs)))
        model.compile("adam", loss=loss, metrics=[tsm.Perplexity()])
        x = rng.normal(size=(32, dim)).astype("float32")
        y = rng.integers(0, head.num_classes, size=32)
        return model, x, y

    models["softmax_mod_shards"] = classifier(
        tsl.SampledSoftmax(40, 6, num_shards=3, partition_strategy="mod", seed=1),
        tsloss.SampledSoftmaxLoss(),
    )
    models["nce_probabilities"] = classifier(
        tsl.NCE(40, 6, output_mode="probabilities", seed=1), tsloss.NCELoss()
    )
    models["rank_uniform"] = classifier(
        tsl.RankSampledSoftmax(40, 8, num_resampled=4, sampler="uniform", seed=1),
        "tf_sampling>RankSampledSoftmaxLoss",
    )
    if SO_BUILT or os.environ.get("CI"):
        models["rank_learned_unigram"] = classifier(
            tsl.RankSampledSoftmax(40, 8, num_resampled=4, seed=1), tsloss.RankSampledSoftmaxLoss()
        )
    return models


def test_keras_file_and_saved_model_in_a_fresh_process(tmp_path):
    expected = {}
    for name, (model, x, y) in _models().items():
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        model.save(tmp_path / f"{name}.keras")
        model.export(str(tmp_path / f"{name}_export"), verbose=False)
        np.save(tmp_path / f"{name}_x.npy", x)
        head = model.layers[-1]
        counts = getattr(head.sampler, "tree", None)
        expected[name] = {
            "predict": model.predict(x, verbose=0),
            "config": head.get_config(),
            "counts": None if counts is None else counts.numpy().tolist(),
            "loss": type(keras.losses.get(model.loss)).__name__,
        }
    names = sorted(expected)
    proc = _run([sys.executable, "-c", CHILD, str(tmp_path), json.dumps(names)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.split("RESULTS", 1)[1])
    for name in names:
        got, want = results[name], expected[name]
        assert not got["tf_sampling_imported"]
        np.testing.assert_array_equal(np.array(got["predict"], np.float32), want["predict"])
        np.testing.assert_allclose(got["serve"], want["predict"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got["signature"], want["predict"], rtol=1e-6, atol=1e-6)
        assert got["loss"] == want["loss"]
        assert json.loads(json.dumps(want["config"])) == got["config"]
        assert got["counts"] == want["counts"]
    if "rank_learned_unigram" in names:
        assert sum(results["rank_learned_unigram"]["counts"]) > 0


@pytest.mark.skipif(
    shutil.which("saved_model_cli") is None
    and not (pathlib.Path(sys.executable).parent / "saved_model_cli").exists(),
    reason="saved_model_cli not installed",
)
def test_saved_model_cli_runs_the_exported_model(tmp_path):
    head = tsl.SampledSoftmax(15, 4, seed=2, bias_initializer="random_normal")
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, head(inputs))
    export = tmp_path / "export"
    model.export(str(export), verbose=False)
    x = np.random.default_rng(1).normal(size=(2, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    cli = shutil.which("saved_model_cli") or str(
        pathlib.Path(sys.executable).parent / "saved_model_cli"
    )
    proc = _run(
        [
            cli,
            "run",
            "--dir",
            str(export),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"x={tmp_path / 'x.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    outputs = list((tmp_path / "out").glob("*.npy"))
    assert len(outputs) == 1
    np.testing.assert_allclose(np.load(outputs[0]), head(x).numpy(), rtol=1e-6, atol=1e-6)


@NEEDS_SO
def test_learned_unigram_sampler_counts_train_and_reload_in_process(tmp_path):
    head = tsl.SampledSoftmax(20, 5, sampler="learned_unigram", seed=3)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss())
    y = np.array([3, 3, 3, 7])
    model.fit(np.ones((4, 4), "float32"), y, epochs=2, batch_size=4, verbose=0)
    assert type(head.sampler).__name__ == "LearnedUnigramSampler"
    assert head.get_config()["sampler"] == "learned_unigram"
    counts = head.sampler.tree.numpy()
    assert counts.sum() > 0
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded.layers[-1].sampler.tree.numpy(), counts)
