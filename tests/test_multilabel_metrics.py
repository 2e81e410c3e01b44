"""Multi-label precision@k, recall@k and nDCG@k (issue 26) against a NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tf_sampling import metrics

NUM_CLASSES, DIM = 50, 4
ROWS = [[3], [7, 2, 9], [11, 5], [0, 0], [13, 8, 21]]  # a repeated class counts once


def _reference(logits, rows, k):
    out = {"precision": [], "recall": [], "ndcg": []}
    for scores, row in zip(logits, rows, strict=True):
        true = set(row)
        # Ties to the lower id, as tf.math.top_k.
        top = sorted(range(len(scores)), key=lambda c: (-scores[c], c))[:k]
        hits = [c in true for c in top]
        dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / np.log2(r + 2) for r in range(min(k, len(true))))
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(true))
        out["ndcg"].append(dcg / idcg)
    return {m: np.array(v) for m, v in out.items()}


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32)
    b = rng.normal(size=(NUM_CLASSES,)).astype(np.float32)
    x = rng.normal(size=(len(ROWS), DIM)).astype(np.float32)
    # Some true classes rank first and second (hits at several ranks).
    b[7], b[21], b[5] = 30.0, 29.0, 28.0
    padded = np.array([r + [-1] * (3 - len(r)) for r in ROWS], np.int64)
    return w, b, x, padded


@pytest.mark.parametrize("k", [1, 3, 10])
def test_full_multilabel_metrics_match_numpy(k):
    w, b, x, padded = _problem()
    logits = x @ w.T + b
    ref = _reference(logits, ROWS, k)
    for labels in (tf.ragged.constant(ROWS, dtype=tf.int64), tsn.label_set(padded, padding_id=-1)):
        got = tsn.full_multilabel_metrics(w, b, labels, x, k, NUM_CLASSES, chunk_size=16)
        for m in ref:
            np.testing.assert_allclose(got[m].numpy(), ref[m], rtol=1e-6, err_msg=m)
    assert ref["recall"].max() > 0  # the problem has hits


@pytest.mark.parametrize(
    "cls,metric",
    [
        (metrics.PrecisionAtK, "precision"),
        (metrics.RecallAtK, "recall"),
        (metrics.NDCGAtK, "ndcg"),
    ],
)
def test_keras_metrics_on_logits(cls, metric):
    w, b, x, padded = _problem(1)
    logits = x @ w.T + b
    ref = _reference(logits, ROWS, 5)[metric]
    m = cls(k=5, padding_id=-1)
    m.update_state(padded, logits)
    np.testing.assert_allclose(float(m.result()), ref.mean(), rtol=1e-6)
    assert m.name == f"{metric}_at_5"
    assert cls.from_config(m.get_config()).padding_id == -1


def test_bad_arguments():
    with pytest.raises(TypeError, match="padding_id"):
        metrics.RecallAtK(k=2, padding_id=1.5)
    with pytest.raises(ValueError, match="k"):
        metrics.RecallAtK(k=0)
    w, b, x, padded = _problem()
    with pytest.raises(ValueError, match="k"):
        tsn.full_multilabel_metrics(
            w, b, tsn.label_set(padded, -1), x, NUM_CLASSES + 1, NUM_CLASSES
        )


def test_keras_metrics_on_a_head_output_in_evaluate():
    import keras

    import tf_sampling.layers as tsl

    _, _, _, padded = _problem()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(len(ROWS), DIM)).astype(np.float32)
    head = tsl.SampledSoftmax(NUM_CLASSES, 4, seed=2)
    inputs = keras.Input((DIM,))
    model = keras.Model(inputs, head(inputs))
    model.compile(
        # Evaluation only: the metrics are under test, the loss is a placeholder.
        loss=lambda y_true, y_pred: keras.ops.sum(y_pred) * 0.0,
        metrics=[
            metrics.PrecisionAtK(k=3),
            metrics.RecallAtK(k=3),
            metrics.NDCGAtK(k=3),
        ],
    )
    # Put true classes on top so the metrics are not all 0.
    bias = rng.normal(size=NUM_CLASSES).astype(np.float32)
    bias[7], bias[21], bias[5] = 30.0, 29.0, 28.0
    head.bias.assign(bias)
    got = model.evaluate(x, padded, batch_size=len(ROWS), verbose=0, return_dict=True)
    logits = x @ head.kernel.numpy().T + bias
    ref = _reference(logits, ROWS, 3)
    assert ref["recall"].max() > 0
    for m in ref:
        assert got[f"{m}_at_3"] == pytest.approx(ref[m].mean(), rel=1e-5), m


@pytest.mark.parametrize(
    "cls,metric", [(metrics.PrecisionAtK, "precision"), (metrics.NDCGAtK, "ndcg")]
)
def test_keras_metrics_leave_rows_without_a_label_out_of_the_mean(cls, metric):
    w, b, x, padded = _problem(2)
    logits = x @ w.T + b
    ref = _reference(logits, ROWS, 5)[metric]
    empty = np.full((1, padded.shape[1]), -1, np.int64)
    m = cls(k=5, padding_id=-1)
    m.update_state(np.concatenate([padded, empty]), np.concatenate([logits, logits[:1]]))
    np.testing.assert_allclose(float(m.result()), ref.mean(), rtol=1e-6)
    # With sample weights too: the weighted mean of the labelled rows.
    weights = np.arange(1, len(ROWS) + 1, dtype=np.float32)
    m.reset_state()
    m.update_state(
        np.concatenate([padded, empty]),
        np.concatenate([logits, logits[:1]]),
        sample_weight=np.concatenate([weights, [5.0]]),
    )
    np.testing.assert_allclose(float(m.result()), np.average(ref, weights=weights), rtol=1e-6)
    # Nothing labelled: no measurement, NaN (not 0).
    m.reset_state()
    m.update_state(empty, logits[:1])
    assert np.isnan(float(m.result()))
