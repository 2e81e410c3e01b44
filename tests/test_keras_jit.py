"""model.compile(jit_compile=True) on the heads' default samplers (issue 22).

A head on a built-in (``tf.random``) sampler compiles: in the XLA step its
loss draws from the compilable twin of the same distribution. A head whose
sampler cannot compile (the learned-unigram sampler on the C++ op) is not
compiled silently: reading ``supports_jit`` warns, naming the fix.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.metrics as tsm
from tf_sampling.samplers import compilable, xla_defaults
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler

NUM_CLASSES, DIM = 30, 6


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(DIM, NUM_CLASSES)), 1).astype("int64")
    return x, y


def test_heads_on_builtin_samplers_train_compiled_with_their_twins():
    unigrams = np.arange(1, NUM_CLASSES + 1, dtype=float)[::-1].tolist()
    heads = [
        tsl.SampledSoftmax(NUM_CLASSES, 8, seed=1, name="softmax"),  # log_uniform
        # With replacement (compiles faster; the default's unique draws are above).
        tsl.NCE(NUM_CLASSES, 8, sampler={"name": "uniform", "unique": False}, seed=2, name="nce"),
        tsl.SampledSoftmax(
            NUM_CLASSES,
            8,
            sampler={
                "name": "fixed_unigram",
                "unigrams": unigrams,
                "distortion": 0.75,
                "unique": False,
            },
            seed=3,
            name="unigram",
        ),
    ]
    inputs = keras.Input((DIM,))
    model = keras.Model(inputs, [head(inputs) for head in heads])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(
            keras.optimizers.Adam(0.05),
            loss=[tsloss.SampledSoftmaxLoss(), tsloss.NCELoss(), tsloss.SampledSoftmaxLoss()],
            metrics=[[tsm.Perplexity()], [], []],
            jit_compile=True,
        )
    assert model.jit_compile is True  # Keras did not fall back
    assert not [w for w in caught if "jit_compile" in str(w.message)]
    x, y = _data()
    before = model.evaluate(x, [y, y, y], verbose=0, return_dict=True)
    history = model.fit(x, [y, y, y], batch_size=16, epochs=3, verbose=0).history
    after = model.evaluate(x, [y, y, y], verbose=0, return_dict=True)
    # A twin exists only where the loss was traced under XLA, and it drew once
    # per compiled step: 3 epochs of 4 batches.
    for head, name in zip(heads, ("log_uniform", "uniform", "fixed_unigram"), strict=True):
        twin = xla_defaults._TWINS.get(head.sampler)
        assert isinstance(twin, compilable.CompilableSampler) and twin.sampler_name == name
        assert int(twin.step.numpy()) == 12
        assert twin.unique == head.sampler.unique and twin.range_max == NUM_CLASSES
    twin = xla_defaults._TWINS.get(heads[2].sampler)
    assert twin.distortion == 0.75 and twin.unigrams == unigrams
    for name in ("softmax_loss", "nce_loss", "unigram_loss"):
        assert after[name] < 0.85 * before[name], (name, before[name], after[name])
    # Validation-only metrics stay out of the compiled training logs.
    assert not [key for key in history if "perplexity" in key]


def test_head_on_the_learned_unigram_op_warns_naming_the_compilable_sampler():
    head = tsl.RankSampledSoftmax(NUM_CLASSES, 8, num_resampled=4, seed=1)  # learned_unigram
    assert isinstance(head.sampler, LearnedUnigramSampler)
    inputs = keras.Input((DIM,))
    model = keras.Model(inputs, head(inputs))
    with pytest.warns(UserWarning, match=r"'name': 'learned_unigram', 'compilable': True"):
        model.compile("sgd", loss=tsloss.RankSampledSoftmaxLoss(), jit_compile=True)
    assert model.jit_compile is False
    # With the compilable sampler of the same distribution it compiles.
    head = tsl.RankSampledSoftmax(
        NUM_CLASSES,
        8,
        num_resampled=4,
        sampler={"name": "learned_unigram", "compilable": True},
        seed=1,
    )
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=tsloss.RankSampledSoftmaxLoss(), jit_compile=True)
    assert model.jit_compile is True


def test_loss_compiled_by_hand_on_the_learned_unigram_op_names_the_fix():
    head = tsl.SampledSoftmax(NUM_CLASSES, 8, sampler="learned_unigram", seed=1)
    loss = tsloss.SampledSoftmaxLoss()
    x, y = _data(8)
    head(x)
    step = tf.function(lambda x, y: loss(y, head(x, training=True)), jit_compile=True)
    with pytest.raises(TypeError, match=r"LearnedUnigramSampler.*'compilable': True"):
        step(x, y)


def test_twin_keeps_the_sampler_options_and_the_seeded_stream():
    head = tsl.SampledSoftmax(NUM_CLASSES, 8, sampler={"name": "uniform", "unique": False}, seed=5)
    twin = xla_defaults.compilable_twin(head.sampler)
    assert xla_defaults.compilable_twin(head.sampler) is twin  # one stream per sampler
    assert twin.sampler_name == "uniform" and twin.unique is False
    other = tsl.SampledSoftmax(NUM_CLASSES, 8, sampler={"name": "uniform", "unique": False}, seed=5)
    again = xla_defaults.compilable_twin(other.sampler)
    # Same seeds, same key: the same draws.
    labels = tf.constant([[1]], tf.int64)
    np.testing.assert_array_equal(
        twin.sample(labels, 1, 8)[0].numpy(), again.sample(labels, 1, 8)[0].numpy()
    )


def test_compiled_fit_on_out_of_range_labels_reports_nan_not_a_plausible_loss():
    # XLA drops the range asserts that stop an uncompiled step: the loss of a
    # batch with a bad label must then be NaN, never a finite number.
    # Samplers with replacement: the check does not depend on it, and they compile faster.
    heads = [
        tsl.SampledSoftmax(10, 3, sampler={"name": "log_uniform", "unique": False}, name="sampled"),
        tsl.NCE(10, 3, sampler={"name": "uniform", "unique": False}, seed=1, name="nce"),
        tsl.SampledSoftmax(10, 3, seed=1, name="full"),
    ]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, [head(inputs) for head in heads])
    model.compile(
        "sgd",
        loss=[tsloss.SampledSoftmaxLoss(), tsloss.NCELoss(), tsloss.FullSoftmaxLoss()],
        jit_compile=True,
    )
    assert model.jit_compile is True
    x = np.ones((8, 4), "float32")
    y = np.array([1, 2, 3, 12, 0, 1, 2, 3])  # 12 is not a class
    history = model.fit(x, [y, y, y], batch_size=8, epochs=1, verbose=0).history
    for name in ("sampled_loss", "nce_loss", "full_loss"):
        assert np.isnan(history[name][0]), (name, history[name])
    result = model.evaluate(x, [y, y, y], verbose=0, return_dict=True)
    assert all(np.isnan(result[name]) for name in ("sampled_loss", "nce_loss", "full_loss"))
    # Uncompiled, the same batch is refused outright.
    model.compile(
        "sgd",
        loss=[tsloss.SampledSoftmaxLoss(), tsloss.NCELoss(), tsloss.FullSoftmaxLoss()],
        jit_compile=False,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="12"):
        model.fit(x, [y, y, y], batch_size=8, epochs=1, verbose=0)
