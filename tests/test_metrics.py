"""tf_sampling.metrics: no NaN in training logs, NaN rows are no hits (issue 22).

``Perplexity`` and ``TopKAccuracy`` are measured on evaluation batches only;
on the training batches of ``fit`` (the head returns hidden activations) they
are left out of the logs. A row of NaN logits is never a top-k hit, as in
Keras' own metric.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm

V, D = 30, 6


def _model(head=None, **compile_options):
    head = head or tsl.SampledSoftmax(V, 4, seed=2)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    model.compile(
        "sgd",
        loss=tsloss.SampledSoftmaxLoss(),
        metrics=[tsm.Perplexity(), tsm.TopKAccuracy(k=5)],
        **compile_options,
    )
    return model, head


def _data(n=32, seed=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)).astype("float32"), rng.integers(0, V, size=n)


class _BatchLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


TRAINING_ONLY = ("perplexity", "top_5_accuracy")


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_fit_logs_leave_out_metrics_of_validation_data_only(steps_per_execution):
    model, _ = _model(steps_per_execution=steps_per_execution)
    x, y = _data()
    logs = _BatchLogs()
    history = model.fit(
        x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0, callbacks=[logs]
    ).history
    for entry in [history, *logs.batches, *logs.epochs]:
        assert not set(TRAINING_ONLY) & set(entry), entry
        assert all(np.isfinite(v).all() for v in entry.values()), entry
    assert logs.batches and all("loss" in entry for entry in logs.batches)
    # Measured on the validation data: real values, as evaluate gives them.
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(history["val_perplexity"][-1], want["perplexity"], rtol=1e-5)
    np.testing.assert_allclose(history["val_top_5_accuracy"][-1], want["top_5_accuracy"])
    assert np.exp(want["loss"]) == pytest.approx(want["perplexity"], rel=1e-5)


def test_metrics_without_a_measured_example_still_read_nan():
    # Evaluation outputs whose examples all weigh 0, and no training batch
    # skipped: nothing measured, so NaN (not a plausible 0 or 1).
    _, head = _model()
    x, y = _data(8)
    for metric in (tsm.Perplexity(), tsm.TopKAccuracy(k=5)):
        metric.update_state(y, head(x), sample_weight=np.zeros(8, "float32"))
        assert np.isnan(float(metric.result()))


def test_standalone_metric_after_training_batches_only_has_no_value_until_measured():
    _, head = _model()
    x, y = _data(8)
    metric = tsm.Perplexity()
    metric.update_state(y, head(x, training=True))
    assert metric.result() == {}
    metric.update_state(y, head(x))
    assert np.isfinite(float(metric.result()))
    metric.reset_state()
    assert np.isnan(float(metric.result()))


def _nan_rows_reference(logits, labels, k):
    keras_metric = keras.metrics.SparseTopKCategoricalAccuracy(k=k)
    keras_metric.update_state(labels, logits)
    return float(keras_metric.result())


@pytest.mark.parametrize("k", [1, 5])
def test_top_k_accuracy_counts_nan_rows_as_misses_like_keras(k):
    model, head = _model()
    x, y = _data(16)
    kernel = head.kernel.numpy()
    kernel[y[:8]] = np.nan  # the first 8 rows' targets have NaN logits
    head.kernel.assign(kernel)
    metric = tsm.TopKAccuracy(k=k)
    metric.update_state(y, head(x))
    logits = x @ kernel.T + head.bias.numpy()
    want = _nan_rows_reference(logits, y, k)
    assert float(metric.result()) == pytest.approx(want)
    # Untagged logits of any other model: the same.
    plain = tsm.TopKAccuracy(k=k)
    plain.update_state(y, logits)
    assert float(plain.result()) == pytest.approx(want)


def test_a_model_whose_weights_went_nan_has_zero_top_k_accuracy():
    model, head = _model()
    x, y = _data(16)
    head.kernel.assign(np.full((V, D), np.nan, "float32"))
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["top_5_accuracy"] == 0.0
    assert np.isnan(result["loss"]) and np.isnan(result["perplexity"])
    assert _nan_rows_reference(model.predict(x, verbose=0), y, 5) == 0.0


# ---------------------------------------------------------------------------
# Logs and configs (from test_keras_hardening.py)
# ---------------------------------------------------------------------------


def test_training_logs_hold_no_metric_values_and_val_values_are_real():
    v, d = 30, 6
    head = tsl.SampledSoftmax(v, 4, seed=2)
    inputs = keras.Input((d,))
    model = keras.Model(inputs, head(inputs))
    model.compile(
        "sgd",
        loss=tsloss.SampledSoftmaxLoss(),
        metrics=[tsm.Perplexity(), tsm.TopKAccuracy(k=5)],
    )
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, d)).astype("float32")
    y = rng.integers(0, v, size=32)
    history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0).history
    # Not measured on training batches: absent, never NaN or a plausible 0 or 1.
    assert "perplexity" not in history and "top_5_accuracy" not in history
    assert 1.0 < history["val_perplexity"][0] < 10 * v
    assert 0.0 <= history["val_top_5_accuracy"][0] <= 1.0


def test_metrics_and_loss_config_round_trip_and_bad_k():
    metric = tsm.TopKAccuracy(k=3, name="top3")
    again = tsm.TopKAccuracy.from_config(metric.get_config())
    assert (again.k, again.name) == (3, "top3")
    ppl = tsm.Perplexity.from_config(tsm.Perplexity(num_true=2).get_config())
    assert ppl.num_true == 2
    with pytest.raises(ValueError, match="k"):
        tsm.TopKAccuracy(k=0)
    with pytest.raises(TypeError, match="num_true"):
        tsm.Perplexity(num_true="2")
