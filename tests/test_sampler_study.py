"""bench/sampler_study.py end to end on a tiny synthetic corpus (a few seconds)."""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_study():
    spec = importlib.util.spec_from_file_location(
        "sampler_study", ROOT / "bench" / "sampler_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


study = _load_study()


@pytest.fixture(scope="module")
def tiny():
    # Four short runs: both losses with the learned-unigram sampler, TAPAS and
    # the plain sampled softmax it is compared with.
    num_classes = 120
    config = study.StudyConfig(
        num_sampled=(8,),
        samplers=("learned_unigram",),
        losses=study.LOSSES,
        tapas=((32, 8),),
        train_tokens=6_000,
        eval_tokens=1_000,
        context=1,
        embedding_dim=16,
        hidden_dim=16,
        batch_size=100,
        learning_rate=1e-2,
        full_softmax=False,
    )
    train = study.markov_tokens(num_classes, 7_000, seed=0)
    held_out = study.markov_tokens(num_classes, 1_200, seed=1)
    data = study.prepare_data(train, held_out, num_classes, config, "synthetic Markov chain")
    return config, data, study.run_study(config, data, log=lambda line: None)


def test_ngram_examples_are_the_previous_words_and_the_next():
    tokens = np.array([5, 6, 7, 8, 9])
    x, y = study.ngram_examples(tokens, 2)
    np.testing.assert_array_equal(x, [[5, 6], [6, 7], [7, 8]])
    np.testing.assert_array_equal(y, [7, 8, 9])
    with pytest.raises(ValueError, match="context"):
        study.ngram_examples(tokens, 5)


def test_every_run_is_present_scored_and_serialisable(tiny, tmp_path):
    config, data, results = tiny
    runs = results["runs"]
    keys = {(r["loss"], r["sampler"], r["num_sampled"], r["num_resampled"]) for r in runs}
    expected = {
        (loss, sampler, n, None)
        for loss in config.losses
        for sampler in config.samplers
        for n in config.num_sampled
    }
    expected |= {
        ("tapas", "learned_unigram", 32, 8),
        ("sampled_softmax", "learned_unigram", 32, None),
    }
    assert keys == expected
    for run in runs:
        assert np.isfinite(run["perplexity"]) and run["perplexity"] > 1
        assert run["perplexity"] == pytest.approx(np.exp(run["cross_entropy"]))
        assert 0 < run["mrr"] <= 1
        recalls = [run[f"recall@{k}"] for k in study.RECALL_KS]
        assert recalls == sorted(recalls) and recalls[-1] <= 1
        assert run["steps"] == 60
        if run["loss"] != "nce":
            # Trained: well below a uniform guess over the classes (NCE's
            # logits are not normalised; 60 steps leave its softmax far off).
            assert run["perplexity"] < data.num_classes / 2, run
    row = results["tapas_comparison"][0]
    assert row["tapas"] and row["sampled_softmax_same_kept"] and row["sampled_softmax_same_drawn"]
    assert set(results["fewer_samples_than_uniform"]) == set(config.losses)
    json.loads(json.dumps(results))
    study.plot(results, tmp_path / "study.png")
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_learned_unigram_counts_are_the_training_labels(tiny):
    _, _, results = tiny
    learned = [r for r in results["runs"] if r["sampler"] == "learned_unigram"]
    assert learned
    for run in learned:
        assert run["learned_counts_total"] == 6_000
        assert run["learned_counts_match_labels"]


def test_exact_scores_match_numpy():
    import keras

    keras.utils.set_random_seed(3)
    num_classes, config = 30, study.StudyConfig(context=2, embedding_dim=4, hidden_dim=6)
    head, _ = study.make_head("sampled_softmax", num_classes, 5, "uniform", seed=1)
    _, features = study.build_model(config, num_classes, head)
    x = np.random.default_rng(0).integers(0, num_classes, size=(50, 2)).astype(np.int32)
    y = np.random.default_rng(1).integers(0, num_classes, size=50).astype(np.int32)
    got = study.exact_scores(features, head, x, y, batch_size=16)
    hidden = features(x).numpy().astype(np.float64)
    logits = hidden @ head.kernel.numpy().T + head.bias.numpy()
    log_z = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    ce = log_z - logits[np.arange(50), y]
    rank = 1 + (logits > logits[np.arange(50), y][:, None]).sum(1)
    assert got["cross_entropy"] == pytest.approx(ce.mean(), rel=1e-5)
    assert got["mrr"] == pytest.approx(np.mean(1 / rank))
    assert got["recall@5"] == pytest.approx(np.mean(rank <= 5))


def test_fewer_samples_ratio_reads_the_grid():
    runs = [
        {"loss": "nce", "sampler": "uniform", "num_sampled": n, "perplexity": p}
        for n, p in ((64, 300.0), (256, 200.0), (1024, 150.0))
    ] + [
        {"loss": "nce", "sampler": "log_uniform", "num_sampled": n, "perplexity": p}
        for n, p in ((64, 190.0), (256, 140.0), (1024, 130.0))
    ]
    ratios = study.fewer_samples_ratios(runs, "nce")
    assert ratios == {"log_uniform": {"64": 1.0, "256": 4.0, "1024": 4.0}}


def test_unigram_sampler_uses_the_training_counts(tiny):
    _, data, _ = tiny
    spec = study.sampler_spec("unigram", data)
    assert spec["name"] == "fixed_unigram" and spec["distortion"] == 1.0
    np.testing.assert_array_equal(spec["unigrams"], np.maximum(data.unigram_counts, 1))
    assert study.sampler_spec("log_uniform", data) == "log_uniform"


def test_unknown_sampler_and_kind_are_rejected(tiny):
    _, data, _ = tiny
    with pytest.raises(ValueError, match="sampler"):
        study.sampler_spec("zipf", data)
    with pytest.raises(ValueError, match="kind"):
        study.make_head("hinge", 10, 2, "uniform", seed=1)
    assert tf.executing_eagerly()
