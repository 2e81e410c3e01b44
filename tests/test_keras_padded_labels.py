"""Keras losses with ``padding_id``: padded y_true [batch, max_true] as a label set (issue 26)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
import tf_sampling.losses as tsloss
import tf_sampling.nn as tsn

V, D, MAX_TRUE, NUM_SAMPLED = 40, 6, 3, 8
ROWS = [[4], [7, 2, 9], [11, 5], [0], [13, 8, 21], [3, 3]]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(ROWS), D)).astype(np.float32)
    y = np.array([r + [-1] * (MAX_TRUE - len(r)) for r in ROWS], np.int64)
    return x, y


def _head(kind):
    if kind == "nce":
        return tsl.NCE(V, NUM_SAMPLED, num_true=MAX_TRUE, seed=1)
    if kind == "rank":
        return tsl.RankSampledSoftmax(V, NUM_SAMPLED, 4, 0.8, num_true=MAX_TRUE, seed=1)
    return tsl.SampledSoftmax(V, NUM_SAMPLED, num_true=MAX_TRUE, seed=1)


def _functional(kind, head, labels, x, sampled_values):
    w, b = head.kernel, head.bias
    common = dict(
        remove_accidental_hits=head.remove_accidental_hits,
        partition_strategy=head.partition_strategy,
    )
    if kind == "full":
        return tsn.full_softmax_cross_entropy(w, b, labels, x, V, MAX_TRUE)
    if kind == "rank":
        return tsn.rank_sampled_softmax_loss(
            w,
            b,
            labels,
            x,
            NUM_SAMPLED,
            4,
            V,
            MAX_TRUE,
            sampled_values,
            float(head.resampling_temperature.numpy()),
            **common,
        )
    fn = tsn.nce_loss if kind == "nce" else tsn.sampled_softmax_loss
    return fn(
        weights=w,
        biases=b,
        labels=labels,
        inputs=x,
        num_sampled=NUM_SAMPLED,
        num_classes=V,
        num_true=MAX_TRUE,
        sampled_values=sampled_values,
        **common,
    )


LOSSES = {
    "softmax": tsloss.SampledSoftmaxLoss,
    "nce": tsloss.NCELoss,
    "rank": tsloss.RankSampledSoftmaxLoss,
    "full": tsloss.FullSoftmaxLoss,
}


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_fit_with_mixed_label_counts_equals_the_functional_loss(kind, monkeypatch):
    x, y = _data()
    head = _head(kind)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    loss = LOSSES[kind](padding_id=-1)
    model.compile(keras.optimizers.SGD(0.0), loss=loss, run_eagerly=True)
    drawn = []
    original = head.sampler.sample

    def spy(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(head.sampler, "sample", spy)
    history = model.fit(x, y, batch_size=len(ROWS), epochs=1, shuffle=False, verbose=0)
    monkeypatch.undo()
    sampled_values = None if kind == "full" else drawn[-1]
    want = _functional(kind, head, tsn.label_set(y, padding_id=-1), x, sampled_values)
    assert history.history["loss"][0] == pytest.approx(float(tf.reduce_mean(want)), rel=1e-5)
    if kind == "rank":
        # The learned-unigram sampler counted only the real labels.
        real = [c for r in ROWS for c in r]
        np.testing.assert_array_equal(head.sampler.counts().numpy(), np.bincount(real, minlength=V))
    # evaluate: the exact loss over all classes, same label sets.
    got = model.evaluate(x, y, batch_size=len(ROWS), verbose=0)
    objective = tsn.full_sigmoid_cross_entropy if kind == "nce" else tsn.full_softmax_cross_entropy
    exact = objective(head.kernel, head.bias, tsn.label_set(y, padding_id=-1), x, V, MAX_TRUE)
    assert got == pytest.approx(float(tf.reduce_mean(exact)), rel=1e-5)
    restored = LOSSES[kind].from_config(loss.get_config())
    assert restored.padding_id == -1


def test_bad_padding_id():
    with pytest.raises(TypeError, match="padding_id"):
        tsloss.SampledSoftmaxLoss(padding_id=1.5)
    x, y = _data()
    head = _head("softmax")
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(padding_id=3), run_eagerly=True)
    with pytest.raises(ValueError, match="padding_id"):
        model.fit(x, np.where(y < 0, 3, y), batch_size=len(ROWS), epochs=1, verbose=0)


@pytest.mark.slow
def test_padded_labels_fit_under_jit_compile():
    # Under XLA a padding id reaching a lookup or a range check gives NaN, not an error.
    x, y = _data(1)
    head = _head("softmax")
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", loss=tsloss.SampledSoftmaxLoss(padding_id=-1), jit_compile=True)
    history = model.fit(x, y, batch_size=len(ROWS), epochs=2, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.jit_compile


@pytest.mark.parametrize("kind", ["softmax", "nce", "full"])
def test_allow_empty_gives_an_all_padding_row_loss_zero(kind, monkeypatch):
    x, y = _data(2)
    y[3] = -1  # row 3 has no label
    head = _head(kind)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, head(inputs))
    model.compile(keras.optimizers.SGD(0.0), loss=LOSSES[kind](padding_id=-1), run_eagerly=True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        model.fit(x, y, batch_size=len(ROWS), epochs=1, verbose=0)

    loss = LOSSES[kind](padding_id=-1, allow_empty=True)
    model.compile(keras.optimizers.SGD(0.0), loss=loss, run_eagerly=True)
    drawn = []
    original = head.sampler.sample

    def spy(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(head.sampler, "sample", spy)
    history = model.fit(x, y, batch_size=len(ROWS), epochs=1, shuffle=False, verbose=0)
    monkeypatch.undo()
    labels = tsn.label_set(y, padding_id=-1, allow_empty=True)
    want = _functional(kind, head, labels, x, None if kind == "full" else drawn[-1])
    assert float(want[3]) == 0.0
    # The empty row counts in the mean with loss 0, as a row of sample weight 0.
    assert history.history["loss"][0] == pytest.approx(float(tf.reduce_mean(want)), rel=1e-5)

    # Per-row values, training (sampled), on the head's output (exact from the
    # table) and on untagged dense logits (exact from them).
    features = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        per_row = loss.call(y, head(features, training=True))
        empty_row, total = per_row[3], tf.reduce_sum(per_row)
    assert float(empty_row) == 0.0
    assert np.all(tape.gradient(empty_row, features).numpy() == 0.0)
    grad = tape.gradient(total, features).numpy()
    assert np.all(grad[3] == 0.0) and np.all(np.abs(grad[[0, 1, 2, 4, 5]]).sum(1) > 0)
    objective = tsn.full_sigmoid_cross_entropy if kind == "nce" else tsn.full_softmax_cross_entropy
    exact = objective(head.kernel, head.bias, labels, x, V, MAX_TRUE).numpy()
    assert exact[3] == 0.0
    np.testing.assert_allclose(loss.call(y, head(x)).numpy(), exact, rtol=1e-5, atol=1e-6)
    dense = tf.identity(tf.matmul(x, head.kernel, transpose_b=True) + head.bias)
    on_dense = LOSSES[kind](padding_id=-1, allow_empty=True, layer=head).call(y, dense)
    np.testing.assert_allclose(on_dense.numpy(), exact, rtol=1e-5, atol=1e-6)
    assert LOSSES[kind].from_config(loss.get_config()).allow_empty is True


def test_allow_empty_needs_padding_id():
    with pytest.raises(ValueError, match="padding_id"):
        tsloss.SampledSoftmaxLoss(allow_empty=True)
    with pytest.raises(TypeError, match="allow_empty"):
        tsloss.SampledSoftmaxLoss(padding_id=-1, allow_empty="yes")
