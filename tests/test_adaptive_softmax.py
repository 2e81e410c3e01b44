"""Adaptive softmax: the functional form against a NumPy reference, and the Keras head."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling as ts
from tf_sampling import nn as tsn

V, D = 13, 6
CUTOFFS = [4, 8]  # shortlist [0, 4), clusters [4, 8) and [8, 13)
WIDTHS = [3, 1]  # D // 2, D // 4: div_value 2


def make_params(rng, cutoffs=CUTOFFS, widths=WIDTHS, biases=True, dtype=np.float64):
    edges = list(cutoffs) + [V]
    rows = cutoffs[0] + len(cutoffs) if cutoffs else V
    sizes = [edges[i + 1] - edges[i] for i in range(len(cutoffs))]
    return {
        "head_weights": rng.normal(size=(rows, D)).astype(dtype),
        "head_biases": rng.normal(size=rows).astype(dtype) if biases else None,
        "tail_projections": [rng.normal(size=(D, w)).astype(dtype) for w in widths],
        "tail_weights": [
            rng.normal(size=(s, w)).astype(dtype) for s, w in zip(sizes, widths, strict=True)
        ],
        "tail_biases": [rng.normal(size=s).astype(dtype) for s in sizes] if biases else None,
    }


def _map(fn, params):
    """``fn`` applied to every array of ``params``, None entries kept."""
    return tf.nest.map_structure(lambda a: None if a is None else fn(a), params)


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def reference_log_prob(p, x, cutoffs=CUTOFFS):
    """float64 NumPy log-probabilities [n, V] of the two-level distribution."""
    hb = 0.0 if p["head_biases"] is None else p["head_biases"]
    head = _log_softmax(x @ p["head_weights"].T + hb)
    if not cutoffs:
        return head
    s = cutoffs[0]
    out = [head[:, :s]]
    for i in range(len(cutoffs)):
        tb = 0.0 if p["tail_biases"] is None else p["tail_biases"][i]
        local = _log_softmax((x @ p["tail_projections"][i]) @ p["tail_weights"][i].T + tb)
        out.append(local + head[:, s + i : s + i + 1])
    return np.concatenate(out, 1)


def call(fn, p, *args, **kwargs):
    return fn(
        p["head_weights"],
        p["head_biases"],
        p["tail_projections"],
        p["tail_weights"],
        p["tail_biases"],
        *args,
        **kwargs,
    )


# ------------------------------------------------------------------ functional
@pytest.mark.parametrize("biases", [True, False])
@pytest.mark.parametrize("cutoffs,widths", [(CUTOFFS, WIDTHS), ([3], [2])])
def test_log_prob_equals_numpy_reference_and_is_normalized(biases, cutoffs, widths):
    rng = np.random.default_rng(0)
    p = make_params(rng, cutoffs, widths, biases, np.float32)
    x = rng.normal(size=(7, D)).astype(np.float32)
    got = call(tsn.adaptive_log_softmax, p, x, cutoffs, V).numpy()
    expected = reference_log_prob(
        _map(lambda a: a.astype(np.float64), p), x.astype(np.float64), cutoffs
    )
    assert got.dtype == np.float32 and got.shape == (7, V)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(got.astype(np.float64)).sum(1), 1.0, atol=1e-5)
    labels = rng.integers(0, V, 7)
    loss = call(tsn.adaptive_softmax_loss, p, labels, x, cutoffs, V).numpy()
    np.testing.assert_allclose(loss, -expected[np.arange(7), labels], rtol=1e-5, atol=1e-5)
    # [batch, 1] labels are accepted too.
    loss_2d = call(tsn.adaptive_softmax_loss, p, labels[:, None], x, cutoffs, V).numpy()
    np.testing.assert_array_equal(loss_2d, loss)


def _finite_difference(f, arrays, eps=1e-6):
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            keep = a[idx]
            a[idx] = keep + eps
            up = f()
            a[idx] = keep - eps
            down = f()
            a[idx] = keep
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize(
    "labels",
    [[0, 3, 5, 7, 2], [12, 4, 9, 0, 8]],
    ids=["last-cluster-unused", "every-cluster"],
)
def test_gradients_match_finite_differences(labels):
    rng = np.random.default_rng(1)
    p = make_params(rng)
    x = rng.normal(size=(5, D))
    weights = rng.normal(size=(5, V))  # a random objective over every log-probability
    labels = np.asarray(labels)
    arrays = [x] + [a for a in tf.nest.flatten(p) if a is not None]

    def loss_np():
        return -reference_log_prob(p, x)[np.arange(5), labels].mean()

    def objective_np():
        return (weights * reference_log_prob(p, x)).sum()

    variables = [tf.Variable(a) for a in arrays]
    p_tf = tf.nest.pack_sequence_as(p, variables[1:])
    with tf.GradientTape(persistent=True) as tape:
        loss = tf.reduce_mean(
            call(tsn.adaptive_softmax_loss, p_tf, labels, variables[0], CUTOFFS, V)
        )
        objective = tf.reduce_sum(
            weights * call(tsn.adaptive_log_softmax, p_tf, variables[0], CUTOFFS, V)
        )
    for value, reference in ((loss, loss_np), (objective, objective_np)):
        got = tape.gradient(value, variables, unconnected_gradients="zero")
        expected = _finite_difference(reference, arrays)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(tf.convert_to_tensor(g).numpy(), e, rtol=1e-6, atol=1e-7)
    if labels.max() < CUTOFFS[1]:
        # No label in the last cluster: its parameters get exactly zero.
        last = [p_tf[key][1] for key in ("tail_projections", "tail_weights", "tail_biases")]
        last = tape.gradient(loss, last, unconnected_gradients="zero")
        assert all(not np.any(tf.convert_to_tensor(g).numpy()) for g in last)


def test_half_precision_is_computed_in_float32():
    rng = np.random.default_rng(2)
    p = make_params(rng, dtype=np.float32)
    x = rng.normal(size=(4, D)).astype(np.float32)
    p16 = _map(lambda a: tf.constant(a, tf.float16), p)
    got = call(tsn.adaptive_log_softmax, p16, tf.constant(x, tf.float16), CUTOFFS, V)
    assert got.dtype == tf.float32
    rounded = _map(lambda t: tf.cast(t, tf.float64).numpy(), p16)
    expected = reference_log_prob(rounded, x.astype(np.float16).astype(np.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    loss = call(
        tsn.adaptive_softmax_loss, p16, [1, 5, 9, 12], tf.constant(x, tf.float16), CUTOFFS, V
    )
    assert loss.dtype == tf.float32


def test_without_cutoffs_it_is_the_full_softmax():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(V, D)).astype(np.float32)
    b = rng.normal(size=V).astype(np.float32)
    x = rng.normal(size=(6, D)).astype(np.float32)
    labels = rng.integers(0, V, 6)
    logits = tf.matmul(x, w, transpose_b=True) + b
    got = tsn.adaptive_log_softmax(w, b, None, None, None, x, None, V)
    np.testing.assert_allclose(got.numpy(), tf.nn.log_softmax(logits).numpy(), rtol=1e-6, atol=1e-6)
    wv = tf.Variable(w)
    with tf.GradientTape(persistent=True) as tape:
        loss = tsn.adaptive_softmax_loss(wv, b, [], [], None, labels, x, None, V)
        full = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=tf.matmul(x, wv, transpose_b=True) + b
        )
    np.testing.assert_allclose(loss.numpy(), full.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(loss, wv).numpy(), tape.gradient(full, wv).numpy(), rtol=1e-5, atol=1e-6
    )
    scores, ids = tsn.adaptive_top_k(w, b, None, None, None, x, 4, None, V)
    best = tf.math.top_k(tf.nn.log_softmax(logits), 4)
    np.testing.assert_array_equal(ids.numpy(), best.indices.numpy())
    np.testing.assert_allclose(scores.numpy(), best.values.numpy(), rtol=1e-5, atol=1e-6)


def _np_top_k(values, k):
    order = np.argsort(-values, axis=-1, kind="stable")[..., :k]
    return order, np.take_along_axis(values, order, -1)


@pytest.mark.parametrize("chunk_size", [None, 2], ids=["one-block", "blocks-of-2"])
@pytest.mark.parametrize("k", [1, 5, V])
def test_top_k_equals_top_k_of_the_reference(k, chunk_size):
    rng = np.random.default_rng(4)
    p = make_params(rng)
    x = rng.normal(size=(9, D))
    scores, ids = call(tsn.adaptive_top_k, p, x, k, CUTOFFS, V, chunk_size=chunk_size)
    expected_ids, expected_scores = _np_top_k(reference_log_prob(p, x), k)
    assert ids.dtype == tf.int64 and scores.shape == (9, k)
    np.testing.assert_array_equal(ids.numpy(), expected_ids)
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("chunk_size", [None, 2], ids=["one-block", "blocks-of-2"])
def test_top_k_ties_go_to_the_lower_class_id(chunk_size):
    p = make_params(np.random.default_rng(5), dtype=np.float32)
    p = _map(np.zeros_like, p)
    x = np.ones((2, D), np.float32)
    # Every class of a part ties: the shortlist's four first, in id order.
    _, ids = call(tsn.adaptive_top_k, p, x, 6, CUTOFFS, V, chunk_size=chunk_size)
    # (shortlist 1/6 each, cluster 0 classes 1/6 * 1/4: ties then by id.)
    np.testing.assert_array_equal(ids.numpy(), np.tile([0, 1, 2, 3, 4, 5], (2, 1)))
    # Cluster 0 made the likeliest: its tied classes come first, lowest id first.
    p["head_biases"][CUTOFFS[0]] = 10.0
    _, ids = call(tsn.adaptive_top_k, p, x, 6, CUTOFFS, V, chunk_size=chunk_size)
    np.testing.assert_array_equal(ids.numpy(), np.tile([4, 5, 6, 7, 0, 1], (2, 1)))


def test_jit_compile_matches_eager():
    rng = np.random.default_rng(6)
    p = _map(tf.Variable, make_params(rng, dtype=np.float32))
    x = tf.constant(rng.normal(size=(8, D)).astype(np.float32))
    labels = tf.constant([0, 4, 9, 12, 3, 7, 8, 1])
    variables = tf.nest.flatten(p)

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(call(tsn.adaptive_softmax_loss, p, labels, x, CUTOFFS, V))
        return (
            loss,
            tape.gradient(loss, variables),
            call(tsn.adaptive_log_softmax, p, x, CUTOFFS, V),
            call(tsn.adaptive_top_k, p, x, 5, CUTOFFS, V, chunk_size=2),
        )

    eager = step()
    compiled = tf.function(step, jit_compile=True)()
    for a, b in zip(tf.nest.flatten(eager), tf.nest.flatten(compiled), strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    "cutoffs,error,match",
    [
        ([8, 4], ValueError, r"sorted in increasing order, got cutoffs=\[8, 4\]"),
        ([4, 4], ValueError, "must not repeat a value, got 4 twice"),
        ([4, V], ValueError, r"\[1, 12\].*cutoffs=\[4, 13\]"),
        ([0, 4], ValueError, r"\[1, 12\]"),
        ([], ValueError, "at least one class id.*cutoffs=None"),
        ([4.0, 8], TypeError, "must hold ints, got 4.0 of type float"),
        ([True, 8], TypeError, "must hold ints, got True"),
        ("4,8", TypeError, "list of ints"),
        (4, TypeError, "list of ints"),
    ],
)
def test_bad_cutoffs_get_a_clear_error(cutoffs, error, match):
    p = make_params(np.random.default_rng(7))
    with pytest.raises(error, match=match):
        call(tsn.adaptive_log_softmax, p, np.zeros((2, D)), cutoffs, V)
    with pytest.raises(error, match=match):
        ts.layers.AdaptiveSoftmax(V, cutoffs)


def test_bad_parameters_and_labels_get_a_clear_error():
    p = make_params(np.random.default_rng(8))
    x = np.zeros((2, D))
    bad = dict(p, head_weights=p["head_weights"][:-1])
    with pytest.raises(ValueError, match=r"`head_weights` must have shape \[6, '\?'\]"):
        call(tsn.adaptive_log_softmax, bad, x, CUTOFFS, V)
    bad = dict(p, tail_weights=p["tail_weights"][:1])
    with pytest.raises(ValueError, match="`tail_weights` must hold one tensor per tail cluster, 2"):
        call(tsn.adaptive_log_softmax, bad, x, CUTOFFS, V)
    bad = dict(p, tail_weights=[p["tail_weights"][0], p["tail_weights"][1][:, :0]])
    with pytest.raises(ValueError, match=r"`tail_weights\[1\]` must have shape \[5, 1\]"):
        call(tsn.adaptive_log_softmax, bad, x, CUTOFFS, V)
    with pytest.raises(ValueError, match="`inputs` must have the `weights` dim 6"):
        call(tsn.adaptive_log_softmax, p, np.zeros((2, D + 1)), CUTOFFS, V)
    with pytest.raises(tf.errors.InvalidArgumentError):
        call(tsn.adaptive_softmax_loss, p, [0, V], x, CUTOFFS, V)
    with pytest.raises(ValueError, match="`k` must be <= num_classes"):
        call(tsn.adaptive_top_k, p, x, V + 1, CUTOFFS, V)


def test_div_value_and_projection_checks():
    for value, error in ((0.0, ValueError), (-2.0, ValueError), (float("inf"), ValueError)):
        with pytest.raises(error, match="`div_value` must be a finite float > 0"):
            ts.layers.AdaptiveSoftmax(V, CUTOFFS, div_value=value)
    with pytest.raises(TypeError, match="`div_value` must be a float > 0, got '4'"):
        ts.layers.AdaptiveSoftmax(V, CUTOFFS, div_value="4")
    head = ts.layers.AdaptiveSoftmax(V, CUTOFFS, div_value=4.0)
    with pytest.raises(ValueError, match=r"Tail cluster 1 would project dim=6 .* = 0 units"):
        head.build((None, D))


def test_cutoffs_from_counts_follow_the_cumulative_frequency():
    counts = 1000.0 / np.arange(1, 201)  # Zipf over 200 classes
    covered = np.cumsum(counts) / counts.sum()
    cutoffs = tsn.adaptive_softmax_cutoffs(counts)
    assert len(cutoffs) == 3 and cutoffs == sorted(cutoffs)
    for cut, mass in zip(cutoffs, (0.8, 0.9, 0.95), strict=True):
        # The fewest most frequent classes that reach the fraction.
        assert covered[cut - 1] >= mass > covered[cut - 2]
    assert tsn.adaptive_softmax_cutoffs(counts, mass=[0.5]) == [int(np.argmax(covered >= 0.5)) + 1]
    # One dominant class: every fraction is reached by it, a single cutoff remains.
    assert tsn.adaptive_softmax_cutoffs([100, 1, 1, 1]) == [1]
    # Two equal classes: 80% needs both, no split is left (a single cluster).
    assert tsn.adaptive_softmax_cutoffs([1, 1]) is None
    with pytest.raises(
        ValueError, match=r"sorted by decreasing count.*counts\[1\]=1 < counts\[2\]=5"
    ):
        tsn.adaptive_softmax_cutoffs([9, 1, 5])
    with pytest.raises(ValueError, match="increasing fractions"):
        tsn.adaptive_softmax_cutoffs(counts, mass=[0.9, 0.8])
    head = ts.layers.AdaptiveSoftmax.from_counts(counts, div_value=2.0)
    assert head.num_classes == 200 and list(head.cutoffs) == cutoffs


# ----------------------------------------------------------------------- Keras
T = 4


def _token_model(**head_kwargs):
    """Tokens [batch, T] (0 = padding, masked) -> embedding -> dense -> AdaptiveSoftmax."""
    tokens = keras.Input((T,), dtype="int32", name="tokens")
    hidden = keras.layers.Embedding(20, D, mask_zero=True)(tokens)
    hidden = keras.layers.Dense(D, name="trunk")(hidden)
    head = ts.layers.AdaptiveSoftmax(
        V, CUTOFFS, div_value=2.0, bias_initializer="random_normal", **head_kwargs
    )
    return keras.Model(tokens, head(hidden)), head


def _head_params(head):
    return {
        "head_weights": head.head_kernel.numpy().astype(np.float64),
        "head_biases": head.head_bias.numpy().astype(np.float64),
        "tail_projections": [v.numpy().astype(np.float64) for v in head.tail_projections],
        "tail_weights": [v.numpy().astype(np.float64) for v in head.tail_kernels],
        "tail_biases": [v.numpy().astype(np.float64) for v in head.tail_biases],
    }


def _reference(model, head, tokens):
    hidden = keras.Model(model.inputs, head.input).predict(tokens, verbose=0)
    flat = hidden.reshape(-1, D).astype(np.float64)
    return reference_log_prob(_head_params(head), flat).reshape(*hidden.shape[:-1], V)


def _data(seed=9, batch=6):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 20, (batch, T)).astype("int32")
    tokens[:, -1] = 0  # padding, masked out
    tokens[0, 1:] = 0
    targets = rng.integers(0, V, (batch, T))
    weights = rng.uniform(0.5, 2.0, (batch, T)).astype("float32")
    return tokens, targets, weights


def test_fit_with_masks_and_sample_weights_equals_reference_then_trains():
    keras.utils.set_random_seed(0)
    model, head = _token_model()
    model.compile(keras.optimizers.Adam(0.05), loss=ts.losses.AdaptiveSoftmaxLoss())
    tokens, targets, weights = _data()
    log_probs = _reference(model, head, tokens)
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    mask = tokens != 0
    expected = (nll * weights * mask).sum() / mask.sum()
    evaluated = model.evaluate(tokens, targets, sample_weight=weights, verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)
    before = [v.numpy().copy() for v in head.weights]
    trained = model.train_on_batch(tokens, targets, sample_weight=weights)
    np.testing.assert_allclose(trained, expected, rtol=1e-5)  # the loss before the step
    assert all(np.any(v.numpy() != b) for v, b in zip(head.weights, before, strict=True))
    model.fit(tokens, targets, sample_weight=weights, epochs=30, verbose=0)
    after = model.evaluate(tokens, targets, sample_weight=weights, verbose=0)
    assert after < 0.5 * expected
    # [batch] targets on [batch, dim] inputs train too.
    keras.utils.set_random_seed(1)
    inputs = keras.Input((D,))
    flat = keras.Model(inputs, ts.layers.AdaptiveSoftmax(V, CUTOFFS, div_value=2.0)(inputs))
    flat.compile(keras.optimizers.Adam(0.05), loss="tf_sampling>AdaptiveSoftmaxLoss")
    x = np.random.default_rng(2).normal(size=(16, D)).astype("float32")
    y = np.arange(16) % V
    first = flat.evaluate(x, y, verbose=0)
    flat.fit(x, y, epochs=40, verbose=0)
    assert flat.evaluate(x, y, verbose=0) < 0.5 * first


def test_jit_compiled_training_step_matches_the_eager_one():
    tokens, targets, weights = _data()
    losses = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model, head = _token_model()
        model.compile(
            keras.optimizers.SGD(0.1), loss=ts.losses.AdaptiveSoftmaxLoss(), jit_compile=jit
        )
        losses.append([model.train_on_batch(tokens, targets, sample_weight=weights)])
        losses[-1].append(model.train_on_batch(tokens, targets, sample_weight=weights))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_predict_log_probs_probabilities_top_k_and_metrics():
    keras.utils.set_random_seed(3)
    model, head = _token_model()
    tokens, targets, _ = _data(seed=10)
    expected = _reference(model, head, tokens)
    got = model.predict(tokens, verbose=0)
    assert got.dtype == np.float32 and got.shape == (6, T, V)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    best = ts.layers.adaptive_top_k_model(model, 3).predict(tokens, verbose=0)
    ids, scores = _np_top_k(expected, 3)
    np.testing.assert_array_equal(best["ids"], ids)
    np.testing.assert_allclose(best["scores"], scores, rtol=1e-5, atol=1e-5)
    assert best["ids"].dtype == np.int32
    # Probabilities, and the exact metrics read the outputs as logits.
    model_p, head_p = _token_model(output_mode="probabilities")
    model_p.set_weights(model.get_weights())
    np.testing.assert_allclose(model_p.predict(tokens, verbose=0), np.exp(expected), atol=1e-6)
    model_p.compile(
        loss=ts.losses.AdaptiveSoftmaxLoss(),
        metrics=[ts.metrics.Perplexity(), ts.metrics.TopKAccuracy(k=3)],
    )
    result = model_p.evaluate(tokens, targets, verbose=0, return_dict=True)
    nll = -np.take_along_axis(expected, targets[..., None], -1)[..., 0]
    mask = tokens != 0
    np.testing.assert_allclose(result["loss"], nll[mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(result["perplexity"], np.exp(nll[mask].mean()), rtol=1e-4)
    hits = (ids == targets[..., None]).any(-1)
    np.testing.assert_allclose(result["top_3_accuracy"], hits[mask].mean(), rtol=1e-6)


def test_loss_without_an_adaptive_head_is_refused():
    inputs = keras.Input((D,))
    model = keras.Model(inputs, keras.layers.Dense(V)(inputs))
    model.compile(loss=ts.losses.AdaptiveSoftmaxLoss())
    with pytest.raises(ValueError, match="not produced by an AdaptiveSoftmax layer"):
        model.evaluate(np.zeros((2, D)), np.zeros(2, "int32"), verbose=0)


def test_mixed_precision_head_outputs_and_trains_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(4)
    model, head = _token_model()
    assert head.head_kernel.dtype == "float32"
    tokens, targets, weights = _data()
    out = model.predict(tokens, verbose=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, atol=1e-5)
    model.compile(keras.optimizers.Adam(0.05), loss=ts.losses.AdaptiveSoftmaxLoss())
    first = model.evaluate(tokens, targets, verbose=0)
    model.fit(tokens, targets, epochs=20, verbose=0)
    assert model.evaluate(tokens, targets, verbose=0) < first


def test_keras_save_reload_and_savedmodel_served_without_tf_sampling(tmp_path):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((D,), name="features")
    head = ts.layers.AdaptiveSoftmax(
        V, CUTOFFS, div_value=2.0, bias_initializer="random_normal", chunk_size=2
    )
    model = keras.Model(inputs, head(keras.layers.Dense(D, name="trunk")(inputs)))
    model.compile("sgd", loss=ts.losses.AdaptiveSoftmaxLoss())
    x = np.random.default_rng(11).normal(size=(5, D)).astype("float32")
    y = np.array([0, 4, 9, 12, 2])
    expected = model.predict(x, verbose=0)
    expected_top = ts.layers.adaptive_top_k_model(model, 4).predict(x, verbose=0)

    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), expected)
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )
    assert isinstance(reloaded.loss, ts.losses.AdaptiveSoftmaxLoss)
    assert reloaded.layers[-1].get_config() == head.get_config()

    model.export(str(tmp_path / "log_probs"), verbose=False)
    ts.layers.adaptive_top_k_model(model, 4).export(str(tmp_path / "top_k"), verbose=False)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import importlib.abc, json, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tf_sampling':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, tensorflow as tf\n"
        "x = tf.constant(np.load(sys.argv[1]))\n"
        "log_probs = tf.saved_model.load(sys.argv[2]).signatures['serving_default'](x)\n"
        "top = tf.saved_model.load(sys.argv[3]).signatures['serving_default'](x)\n"
        "print(json.dumps({'log_probs': list(log_probs.values())[0].numpy().tolist(),"
        " 'ids': top['ids'].numpy().tolist(), 'scores': top['scores'].numpy().tolist(),"
        " 'imported': [m for m in sys.modules if m.startswith('tf_sampling')]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    served = subprocess.run(
        [sys.executable, "-I", "-c", code]
        + [str(tmp_path / name) for name in ("x.npy", "log_probs", "top_k")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["imported"] == []
    np.testing.assert_allclose(result["log_probs"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(result["ids"], expected_top["ids"])
    np.testing.assert_allclose(result["scores"], expected_top["scores"], rtol=1e-6, atol=1e-6)
