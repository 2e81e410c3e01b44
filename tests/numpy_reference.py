"""NumPy reference of sampled softmax and NCE, forward and analytic gradients.

Written from the formulas (Jean et al. 2014; Gutmann & Hyvärinen 2010; TF's
documented logit correction), independently of TensorFlow, in float64.
"""

from __future__ import annotations

import numpy as np


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def sampled_loss(
    kind, weights, biases, labels, inputs, sampled_values, remove_accidental_hits, cotangent
):
    """Loss and gradients of ``sum(loss * cotangent)`` for an unsharded table.

    Args:
      kind: "softmax" or "nce".
      weights: ``[num_classes, dim]``.
      biases: ``[num_classes]``.
      labels: ``[batch, num_true]`` ints.
      inputs: ``[batch, dim]``.
      sampled_values: ``(sampled [S], true_expected, sampled_expected)``, the counts
        of any shape broadcasting to ``[batch, num_true]`` and ``[batch, S]``.
      remove_accidental_hits: bool.
      cotangent: ``[batch]``.

    Returns:
      tuple: ``loss [batch]``, ``d_weights``, ``d_biases``, ``d_inputs``.
    """
    w = weights.astype(np.float64)
    b = biases.astype(np.float64)
    x = inputs.astype(np.float64)
    labels = np.asarray(labels).reshape(len(x), -1)
    sampled = np.asarray(sampled_values[0])
    num_true = labels.shape[1]
    # Expected counts broadcast against the logits, as in TF.
    true_expected = np.broadcast_to(np.asarray(sampled_values[1], np.float64), labels.shape)
    sampled_expected = np.broadcast_to(
        np.asarray(sampled_values[2], np.float64), (len(x), len(sampled))
    )
    ids = np.concatenate([labels, np.broadcast_to(sampled, (len(x), len(sampled)))], axis=1)
    logits = np.einsum("bd,bcd->bc", x, w[ids]) + b[ids]
    log_q = np.log(np.concatenate([true_expected, sampled_expected], 1))
    logits = logits - log_q
    masked = np.zeros_like(logits, dtype=bool)
    if remove_accidental_hits:
        # A class sampled more than once is masked at its last occurrence (TF's rule).
        last = {int(c): j for j, c in enumerate(sampled)}
        for row in range(len(x)):
            for c in set(labels[row].tolist()):
                if c in last:
                    masked[row, num_true + last[c]] = True
    target = np.zeros_like(logits)
    target[:, :num_true] = 1.0 / num_true
    if kind == "softmax":
        z = np.where(masked, -np.inf, logits)
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        loss = lse - (target * np.where(masked, 0.0, logits)).sum(axis=1)
        d_logits = _softmax(z) - target
    else:
        z = np.where(masked, -np.inf, logits)
        loss = (np.logaddexp(0.0, z) - target * np.where(masked, 0.0, z)).sum(axis=1)
        d_logits = _sigmoid(z) - target
    d_logits = np.where(masked, 0.0, d_logits) * cotangent[:, None]
    d_inputs = np.einsum("bc,bcd->bd", d_logits, w[ids])
    d_weights = np.zeros_like(w)
    d_biases = np.zeros_like(b)
    np.add.at(d_weights, ids, d_logits[:, :, None] * x[:, None, :])
    np.add.at(d_biases, ids, d_logits)
    return loss, d_weights, d_biases, d_inputs


def rank_resampled_values(weights, biases, inputs, sampled_values, num_resampled, temperature):
    """TAPAS' second pass (Bai et al. 2017): the ``num_resampled`` best-scoring candidates.

    The score of candidate ``c`` is ``logsumexp_j((w_c . x_j + b_c) / T)`` over
    the batch rows ``j``; the kept candidates keep their first-pass sampled
    expected counts (last axis), the true expected counts are unchanged.

    Returns:
      tuple: ``(kept ids, true_expected, kept sampled_expected)``.
    """
    w = weights.astype(np.float64)
    b = biases.astype(np.float64)
    x = inputs.astype(np.float64)
    candidates = np.asarray(sampled_values[0])
    z = (w[candidates] @ x.T + b[candidates][:, None]) / temperature
    m = z.max(axis=1, keepdims=True)
    scores = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    keep = np.argsort(-scores, kind="stable")[:num_resampled]
    sampled_expected = np.asarray(sampled_values[2], np.float64)
    if sampled_expected.ndim >= 1 and sampled_expected.shape[-1] == len(candidates):
        sampled_expected = sampled_expected[..., keep]
    return candidates[keep], sampled_values[1], sampled_expected
