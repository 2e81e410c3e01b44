"""Variable-count labels (issue 26): each loss against a per-example TensorFlow reference."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn

NUM_CLASSES, DIM, NUM_SAMPLED, MAX_TRUE = 30, 5, 10, 3
# Mixed counts: 1, max, in between; no repeated class within a row.
ROWS = [[4], [7, 2, 9], [11, 5], [0], [13, 8, 21]]
LOSSES = {"softmax": tsn.sampled_softmax_loss, "nce": tsn.nce_loss}
REFERENCE = {
    "softmax": tf.compat.v1.nn.sampled_softmax_loss,
    "nce": tf.compat.v1.nn.nce_loss,
}


def _problem(seed=0, num_sampled=NUM_SAMPLED, num_classes=NUM_CLASSES):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(num_classes, DIM)).astype(np.float32)
    biases = rng.normal(size=(num_classes,)).astype(np.float32)
    inputs = rng.normal(size=(len(ROWS), DIM)).astype(np.float32)
    # Candidates that hit true classes of some rows (accidental hits).
    others = np.setdiff1d(np.arange(num_classes), [4, 2, 5])
    sampled = np.concatenate([rng.choice(others, num_sampled - 3, replace=False), [4, 2, 5]])
    sampled = rng.permutation(sampled).astype(np.int64)
    true_expected = rng.uniform(0.1, 0.9, size=(len(ROWS), MAX_TRUE)).astype(np.float32)
    sampled_expected = rng.uniform(0.1, 0.9, size=(num_sampled,)).astype(np.float32)
    cotangent = rng.uniform(0.5, 1.5, size=(len(ROWS),)).astype(np.float32)
    return weights, biases, inputs, sampled, true_expected, sampled_expected, cotangent


def _padded(rows=ROWS, pad=-1):
    return np.array([r + [pad] * (MAX_TRUE - len(r)) for r in rows], np.int64)


def _run(fn, labels, problem, num_sampled=NUM_SAMPLED, num_classes=NUM_CLASSES, hits=True, **kw):
    weights, biases, inputs, sampled, true_exp, sampled_exp, cot = problem
    w, b, x = tf.constant(weights), tf.constant(biases), tf.constant(inputs)
    with tf.GradientTape() as tape:
        tape.watch([w, b, x])
        loss = fn(
            weights=w,
            biases=b,
            labels=labels,
            inputs=x,
            num_sampled=num_sampled,
            num_classes=num_classes,
            num_true=kw.pop("num_true", MAX_TRUE),
            sampled_values=(sampled, kw.pop("true_expected", true_exp), sampled_exp),
            remove_accidental_hits=hits,
            **kw,
        )
    grads = tape.gradient(loss, [w, b, x], output_gradients=tf.constant(cot))
    return [loss.numpy()] + [tf.convert_to_tensor(g).numpy() for g in grads]


def _per_example_reference(kind, problem, rows=ROWS, num_sampled=NUM_SAMPLED, hits=True):
    """Each example alone, with num_true = n_i, through TensorFlow's own v1 loss."""
    weights, biases, inputs, sampled, true_exp, sampled_exp, cot = problem
    w, b = tf.constant(weights), tf.constant(biases)
    losses, dw, db, dx = [], 0.0, 0.0, []
    for i, row in enumerate(rows):
        x = tf.constant(inputs[i : i + 1])
        with tf.GradientTape() as tape:
            tape.watch([w, b, x])
            loss = REFERENCE[kind](
                weights=w,
                biases=b,
                labels=np.array([row], np.int64),
                inputs=x,
                num_sampled=num_sampled,
                num_classes=weights.shape[0],
                num_true=len(row),
                sampled_values=(sampled, true_exp[i : i + 1, : len(row)], sampled_exp),
                remove_accidental_hits=hits,
            )
        g = tape.gradient(loss, [w, b, x], output_gradients=tf.constant(cot[i : i + 1]))
        losses.append(loss.numpy()[0])
        dw = dw + tf.convert_to_tensor(g[0]).numpy()
        db = db + tf.convert_to_tensor(g[1]).numpy()
        dx.append(g[2].numpy()[0])
    return [np.array(losses), dw, db, np.array(dx)]


def _assert_close(ours, ref):
    for a, r in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kind", ["softmax", "nce"])
@pytest.mark.parametrize("form", ["ragged", "padding_id", "mask"])
@pytest.mark.parametrize("hits", [True, False])
def test_matches_per_example_reference(kind, form, hits):
    problem = _problem()
    padded = _padded()
    if form == "ragged":
        labels = tf.ragged.constant(ROWS, dtype=tf.int64)
    elif form == "padding_id":
        labels = tsn.label_set(padded, padding_id=-1)
    else:
        # Any value under the mask: a class id too (the mask decides).
        labels = tsn.label_set(np.where(padded < 0, 3, padded), mask=padded >= 0)
    # Padded slots' true expected counts are never read, even when 0.
    true_expected = np.where(padded >= 0, problem[4], 0.0).astype(np.float32)
    ours = _run(LOSSES[kind], labels, problem, hits=hits, true_expected=true_expected)
    _assert_close(ours, _per_example_reference(kind, problem, hits=hits))


def test_nce_many_sampled_matches_reference():
    """The NCE path above SMALL_NUM_SAMPLED (separate true and sampled sums)."""
    problem = _problem(seed=3, num_sampled=300, num_classes=400)
    labels = tf.ragged.constant(ROWS, dtype=tf.int64)
    ours = _run(tsn.nce_loss, labels, problem, num_sampled=300, num_classes=400)
    _assert_close(ours, _per_example_reference("nce", problem, num_sampled=300))


@pytest.mark.parametrize("kind", ["softmax", "nce"])
@pytest.mark.parametrize("num_sampled", [NUM_SAMPLED, 300])
def test_full_rows_bit_equal_to_fixed_num_true(kind, num_sampled):
    num_classes = 400 if num_sampled > NUM_SAMPLED else NUM_CLASSES
    problem = _problem(seed=1, num_sampled=num_sampled, num_classes=num_classes)
    full = np.array([[4, 7, 2], [9, 11, 5], [0, 1, 3], [13, 8, 21], [6, 12, 14]], np.int64)
    fixed = _run(LOSSES[kind], full, problem, num_sampled, num_classes)
    for labels in (tf.ragged.constant(full.tolist(), dtype=tf.int64), tsn.label_set(full, -1)):
        ours = _run(LOSSES[kind], labels, problem, num_sampled, num_classes)
        for a, r in zip(ours, fixed, strict=True):
            np.testing.assert_array_equal(a, r)


def test_ragged_labels_helper_and_forms_agree():
    padded = _padded(pad=-7)
    ragged = tsn.ragged_labels(padded, padding_id=-7)
    assert ragged.to_list() == ROWS
    masked = tsn.ragged_labels(np.where(padded < 0, 0, padded), mask=padded >= 0)
    assert masked.to_list() == ROWS
    problem = _problem(seed=2)
    a = _run(tsn.sampled_softmax_loss, ragged, problem)
    b = _run(tsn.sampled_softmax_loss, tsn.label_set(padded, padding_id=-7), problem)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", ["softmax", "nce"])
def test_allow_empty_rows_get_zero_loss_and_gradient(kind):
    rows = [[4], [], [11, 5], [], [13, 8, 21]]
    problem = _problem(seed=4)
    labels = tsn.label_set(_padded(rows), padding_id=-1, allow_empty=True)
    loss, dw, db, dx = _run(LOSSES[kind], labels, problem)
    assert loss[1] == 0.0 and loss[3] == 0.0
    assert not dx[1].any() and not dx[3].any()
    kept = [0, 2, 4]
    sub = list(problem)
    sub[2], sub[4], sub[6] = problem[2][kept], problem[4][kept], problem[6][kept]
    ref = _per_example_reference(kind, tuple(sub), rows=[rows[i] for i in kept])
    _assert_close([loss[kept], dw, db, dx[kept]], ref)


def test_compiles_under_xla():
    problem = _problem(seed=5)
    weights, biases, inputs, sampled, true_exp, sampled_exp, _ = problem
    padded = _padded()

    def step(labels_padded):
        labels = tsn.label_set(labels_padded, padding_id=-1)
        return tsn.sampled_softmax_loss(
            weights,
            biases,
            labels,
            inputs,
            NUM_SAMPLED,
            NUM_CLASSES,
            MAX_TRUE,
            sampled_values=(sampled, true_exp, sampled_exp),
        ), tsn.nce_loss(
            weights,
            biases,
            labels,
            inputs,
            NUM_SAMPLED,
            NUM_CLASSES,
            MAX_TRUE,
            sampled_values=(sampled, true_exp, sampled_exp),
        )

    eager = step(tf.constant(padded))
    compiled = tf.function(step, jit_compile=True)(tf.constant(padded))
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # The default (compilable) sampler under XLA: finite losses.
    default = tf.function(
        lambda p: tsn.sampled_softmax_loss(
            weights, biases, tsn.label_set(p, padding_id=-1), inputs, 8, NUM_CLASSES, MAX_TRUE
        ),
        jit_compile=True,
    )(tf.constant(padded))
    assert np.isfinite(default.numpy()).all()


def test_empty_row_is_nan_under_xla_without_allow_empty():
    weights, biases, inputs, sampled, true_exp, sampled_exp, _ = _problem()
    padded = _padded([[4], [], [11, 5], [0], [1]])
    fn = tf.function(
        lambda p: tsn.sampled_softmax_loss(
            weights,
            biases,
            tsn.label_set(p, padding_id=-1),
            inputs,
            NUM_SAMPLED,
            NUM_CLASSES,
            MAX_TRUE,
            sampled_values=(sampled, true_exp, sampled_exp),
        ),
        jit_compile=True,
    )
    loss = fn(tf.constant(padded)).numpy()
    assert np.isnan(loss[1]) and np.isfinite(np.delete(loss, 1)).all()


def test_default_sampler_with_ragged_labels():
    weights, biases, inputs, *_ = _problem()
    loss = tsn.sampled_softmax_loss(
        weights, biases, tf.ragged.constant(ROWS, dtype=tf.int64), inputs, 8, NUM_CLASSES, MAX_TRUE
    )
    assert loss.shape == (len(ROWS),) and np.isfinite(loss.numpy()).all()


@pytest.mark.parametrize("kind", ["softmax", "nce"])
def test_bad_input(kind):
    problem = _problem()
    padded = _padded()
    fn = LOSSES[kind]
    with pytest.raises(ValueError, match="padding_id"):
        _run(fn, tsn.label_set(padded, padding_id=3), problem)
    with pytest.raises(ValueError, match="mask"):
        tsn.label_set(padded, mask=np.ones((len(ROWS), 2), bool))
    with pytest.raises(ValueError, match="padding_id"):
        tsn.label_set(padded)
    with pytest.raises(TypeError, match="padding_id"):
        tsn.label_set(padded, padding_id=-1.0)
    # An all-padding row, by default.
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one true label"):
        _run(fn, tsn.label_set(_padded([[4], [], [1], [2], [3]]), padding_id=-1), problem)
    # A negative label is still rejected without padding, and one other
    # than the padding id with it.
    with pytest.raises(tf.errors.InvalidArgumentError):
        _run(fn, tf.ragged.constant([[4], [-1, 2], [1], [2], [3]], dtype=tf.int64), problem)
    with pytest.raises(tf.errors.InvalidArgumentError):
        _run(fn, tsn.label_set(_padded([[4], [-2, 2], [1], [2], [3]]), padding_id=-1), problem)
    # A ragged row longer than num_true; a padded width other than num_true.
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most num_true"):
        _run(fn, tf.ragged.constant([[4], [1, 2, 3, 5], [1], [2], [3]], dtype=tf.int64), problem)
    with pytest.raises(ValueError, match="num_true"):
        _run(fn, tsn.label_set(padded, padding_id=-1), problem, num_true=2)
