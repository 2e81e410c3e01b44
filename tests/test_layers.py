"""Standard Keras tests of the output layers: call, functional model, config, saving, gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm
from tests.layer_tables import dense_table
from tf_sampling._core.sharding import shard_class_ids
from tf_sampling._keras import output_tags

V, D = 23, 6

LAYERS = {
    "sampled_softmax": lambda **kw: tsl.SampledSoftmax(V, num_sampled=5, seed=3, **kw),
    "nce": lambda **kw: tsl.NCE(V, num_sampled=5, seed=3, **kw),
    "rank": lambda **kw: tsl.RankSampledSoftmax(
        V,
        num_sampled=8,
        num_resampled=4,
        resampling_temperature=0.7,
        sampler="uniform",
        seed=3,
        **kw,
    ),
}
LOSSES = {
    "sampled_softmax": tsloss.SampledSoftmaxLoss,
    "nce": tsloss.NCELoss,
    "rank": tsloss.RankSampledSoftmaxLoss,
}


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_call_inference_is_exact_logits_and_training_passes_hidden_through(kind):
    layer = LAYERS[kind](bias_initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(4, D)).astype("float32")
    logits = layer(x).numpy()
    w, b = dense_table(layer)
    assert logits.shape == (4, V) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, x @ w.T + b, rtol=1e-5, atol=1e-5)
    hidden = layer(x, training=True)
    np.testing.assert_array_equal(hidden.numpy(), x)
    assert output_tags.get_tag(hidden).kind == "hidden"


def test_no_bias_and_xla_only_where_keras_auto_compiles():
    layer = tsl.SampledSoftmax(V, 5, use_bias=False)
    x = np.random.default_rng(9).normal(size=(2, D)).astype("float32")
    np.testing.assert_allclose(layer(x).numpy(), x @ layer.kernel.numpy().T, rtol=1e-5, atol=1e-6)
    assert [w.name for w in layer.weights] == ["kernel"]
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(), jit_compile="auto")
    # The default sampler compiles through its compilable twin; Keras' "auto"
    # compiles on accelerators only.
    accelerated = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    assert layer.supports_jit and model.jit_compile is accelerated


@pytest.mark.parametrize("strategy", ["div", "mod"])
def test_sharded_weights_give_the_same_logits_in_class_order(strategy):
    kw = dict(kernel_initializer=keras.initializers.RandomNormal(seed=7))
    whole = tsl.SampledSoftmax(V, 5, **kw, bias_initializer=keras.initializers.RandomNormal(seed=8))
    sharded = tsl.SampledSoftmax(
        V,
        5,
        **kw,
        bias_initializer=keras.initializers.RandomNormal(seed=8),
        num_shards=4,
        partition_strategy=strategy,
    )
    x = np.random.default_rng(1).normal(size=(3, D)).astype("float32")
    np.testing.assert_allclose(sharded(x).numpy(), whole(x).numpy(), rtol=1e-6, atol=1e-6)
    assert [tuple(k.shape) for k in sharded.kernel_shards] == [(6, D), (6, D), (6, D), (5, D)]
    ids = shard_class_ids(V, 4, strategy)
    np.testing.assert_array_equal(sharded.kernel_shards[1].numpy(), whole.kernel.numpy()[ids[1]])


def test_probabilities_output_and_top_k():
    softmax = tsl.SampledSoftmax(V, 5, output_mode="probabilities")
    nce = tsl.NCE(V, 5, output_mode="probabilities")
    x = np.random.default_rng(2).normal(size=(3, D)).astype("float32")
    np.testing.assert_allclose(softmax(x).numpy(), _softmax(softmax.logits(x).numpy()), atol=1e-6)
    np.testing.assert_allclose(nce(x).numpy(), 1 / (1 + np.exp(-nce.logits(x).numpy())), atol=1e-6)
    logits = softmax.logits(x).numpy()
    best = softmax.top_k(x, k=4)
    np.testing.assert_array_equal(best.ids.numpy(), np.argsort(-logits, -1)[:, :4])
    np.testing.assert_allclose(best.scores.numpy(), -np.sort(-logits, -1)[:, :4], rtol=1e-6)
    from_predict = tsl.top_k(logits, k=2)
    np.testing.assert_array_equal(from_predict.ids.numpy(), best.ids.numpy()[:, :2])


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_functional_model_predict_and_sequence_inputs(kind):
    inputs = keras.Input((5, D))
    layer = LAYERS[kind]()
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, 5, V)
    x = np.random.default_rng(3).normal(size=(2, 5, D)).astype("float32")
    w, b = dense_table(layer)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ w.T + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_config_round_trip(kind):
    layer = LAYERS[kind](
        kernel_regularizer="l2", num_shards=2, partition_strategy="mod", output_mode="probabilities"
    )
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert config["sampler"] == ("uniform" if kind == "rank" else "log_uniform")
    assert config["num_shards"] == 2 and config["partition_strategy"] == "mod"
    # Serialized through Keras' own registry, by registered name.
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_fixed_unigram_sampler_config_round_trip():
    unigrams = list(range(1, V + 1))
    layer = tsl.SampledSoftmax(
        V, 4, sampler={"name": "fixed_unigram", "unigrams": unigrams, "distortion": 0.75}
    )
    config = layer.get_config()
    assert config["sampler"] == {"name": "fixed_unigram", "unigrams": unigrams, "distortion": 0.75}
    clone = tsl.SampledSoftmax.from_config(config)
    assert clone.sampler.unigrams == [float(u) for u in unigrams]
    assert clone.sampler.distortion == 0.75


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_keras_save_and_reload_in_process(kind, tmp_path):
    inputs = keras.Input((D,))
    model = keras.Model(inputs, LAYERS[kind](num_shards=3)(keras.layers.Dense(D)(inputs)))
    model.compile("sgd", loss=LOSSES[kind]())
    x = np.random.default_rng(4).normal(size=(8, D)).astype("float32")
    y = np.arange(8) % V
    model.fit(x, y, epochs=1, verbose=0)
    if kind == "rank":
        model.layers[-1].resampling_temperature.assign(0.25)
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(reloaded.loss, LOSSES[kind])
    if kind == "rank":
        assert float(reloaded.layers[-1].resampling_temperature.numpy()) == 0.25
    # The reloaded, compiled model keeps training: its loss finds the layer again.
    before = reloaded.layers[-1].kernel_shards[0].numpy().copy()
    reloaded.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before, reloaded.layers[-1].kernel_shards[0].numpy())


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_weight_gradients_are_indexed_slices(kind):
    layer = LAYERS[kind]()
    x = tf.constant(np.random.default_rng(5).normal(size=(4, D)), tf.float32)
    y = tf.constant([1, 2, 3, 4])
    with tf.GradientTape() as tape:
        loss = LOSSES[kind]()(y, layer(x, training=True))
    grads = tape.gradient(loss, [layer.kernel, layer.bias])
    assert all(isinstance(g, tf.IndexedSlices) for g in grads), [type(g) for g in grads]
    # Only the true and sampled rows are touched.
    assert len(np.unique(grads[0].indices.numpy())) <= 4 + layer.num_sampled


def test_resampling_temperature_is_a_variable_the_callback_changes(tmp_path):
    layer = LAYERS["rank"]()
    assert not layer.resampling_temperature.trainable
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", loss=tsloss.RankSampledSoftmaxLoss())
    seen = []
    schedule = tsl.ResamplingTemperatureScheduler(lambda epoch, t: seen.append(t) or t / 2)
    x = np.ones((4, D), "float32")
    model.fit(x, np.arange(4), epochs=3, verbose=0, callbacks=[schedule])
    np.testing.assert_allclose(seen, [0.7, 0.35, 0.175], rtol=1e-6)
    assert float(layer.resampling_temperature.numpy()) == pytest.approx(0.0875)
    # The config holds the constructor's (initial) value; the current one is
    # state, kept in the variable and restored with the weights.
    assert layer.get_config()["resampling_temperature"] == pytest.approx(0.7)
    path = tmp_path / "rank.keras"
    model.save(path)
    reloaded = keras.models.load_model(path).layers[-1]
    assert float(reloaded.resampling_temperature.numpy()) == pytest.approx(0.0875)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: tsl.SampledSoftmax(-3, 2), ValueError, ["num_classes", "-3"]),
        (lambda: tsl.SampledSoftmax(10.0, 2), TypeError, ["num_classes", "10.0"]),
        (lambda: tsl.SampledSoftmax(10, 10), ValueError, ["num_sampled=10", "num_classes=10"]),
        (lambda: tsl.NCE(10, 12), ValueError, ["num_sampled=12"]),
        (lambda: tsl.SampledSoftmax(10, 0), ValueError, ["num_sampled", "0"]),
        (lambda: tsl.SampledSoftmax(10, 3, num_true=0), ValueError, ["num_true", "0"]),
        (
            lambda: tsl.RankSampledSoftmax(10, 4, num_resampled=4, sampler="uniform"),
            ValueError,
            ["num_resampled=4", "num_sampled=4"],
        ),
        (
            lambda: tsl.RankSampledSoftmax(
                10, 4, num_resampled=2, resampling_temperature=0.0, sampler="uniform"
            ),
            ValueError,
            ["resampling_temperature"],
        ),
        (
            lambda: tsl.RankSampledSoftmax(
                10, 4, num_resampled=2, resampling_temperature=float("nan"), sampler="uniform"
            ),
            ValueError,
            ["resampling_temperature", "nan"],
        ),
        (
            lambda: tsl.RankSampledSoftmax(
                10, 4, num_resampled=2, resampling_temperature=float("inf"), sampler="uniform"
            ),
            ValueError,
            ["resampling_temperature", "inf"],
        ),
        (lambda: tsl.SampledSoftmax(10, 3, partition_strategy="x"), ValueError, ["'x'"]),
        (lambda: tsl.SampledSoftmax(10, 3, num_shards=11), ValueError, ["num_shards=11"]),
        (lambda: tsl.SampledSoftmax(10, 3, output_mode="raw"), ValueError, ["output_mode='raw'"]),
        (lambda: tsl.SampledSoftmax(10, 3, sampler="zipf"), ValueError, ["'zipf'"]),
        (lambda: tsl.SampledSoftmax(10, 3, seed="1"), TypeError, ["seed", "'1'"]),
    ],
)
def test_bad_constructor_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value), str(info.value)


def test_non_unique_sampler_may_sample_more_than_num_classes():
    layer = tsl.SampledSoftmax(10, 12, sampler={"name": "uniform", "unique": False})
    assert layer.num_sampled == 12
    x = tf.ones((3, 4))
    loss = tsloss.SampledSoftmaxLoss()(tf.constant([1, 2, 3]), layer(x, training=True))
    assert np.isfinite(loss.numpy())


def test_bad_inputs_at_first_call():
    layer = tsl.SampledSoftmax(10, 3)
    with pytest.raises(ValueError, match=r"\[batch, \.\.\., dim\]"):
        layer(tf.ones([4]))


# ---------------------------------------------------------------------------
# The head's training output, and its memory (from test_keras_hardening.py)
# ---------------------------------------------------------------------------


def test_fit_warns_when_a_layer_consumes_the_heads_training_output():
    v, d = 20, 6
    head = tsl.SampledSoftmax(v, 4)
    inputs = keras.Input((d,))
    after = keras.layers.Dense(3, name="after_head")(head(inputs))
    model = keras.Model(inputs, after)
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    x = np.ones((8, d), "float32")
    with pytest.warns(UserWarning, match=r"returns its input.*after_head"):
        with pytest.raises(ValueError):
            model.fit(x, np.zeros(8), verbose=0)


def test_head_as_the_output_trains_without_the_warning(recwarn):
    head = tsl.SampledSoftmax(20, 4)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss())
    model.fit(np.ones((8, 6), "float32"), np.zeros(8, "int64"), verbose=0)
    assert not [w for w in recwarn if "returns its input" in str(w.message)]


def test_a_trained_model_and_its_table_are_freed_when_dropped():
    # Keras' traced functions keep graph tensors, and the tags on them point
    # at the head: only weakly, or every model's table would stay in memory.
    import gc
    import weakref

    def train_once():
        inputs = keras.Input((6,))
        head = tsl.SampledSoftmax(500, 8)
        model = keras.Model(inputs, head(inputs))
        model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(), metrics=[tsm.Perplexity()])
        x, y = np.ones((8, 6), "float32"), np.arange(8)
        model.fit(x, y, verbose=0)
        model.evaluate(x, y, verbose=0)
        return weakref.ref(head), weakref.ref(head.kernel_shards[0])

    head, kernel = train_once()
    gc.collect()
    assert head() is None and kernel() is None
