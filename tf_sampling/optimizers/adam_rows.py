"""Lazy Adam's row arithmetic as pure functions: tensors in, tensors out, no variables.

``LazyAdam`` / ``LazyAdamW`` gather the touched rows of a variable and its
slots, compute with these functions and scatter the results back; the fused
C++ kernel (``tf_sampling.ops.resource_sparse_apply_lazy_adam``) computes the
same operations in the same order. Use them to write the same update on other
state, such as Adam slots placed beside the shards of a parameter-server table
(``examples/distributed_ps.py``). One sparse step on rows ``[u, *row]``::

    gradient, squared = sum_lookups(slices, "summed")   # one row per index
    rows -= decay(rows, lr, weight_decay)                # AdamW only
    m, v = moments(m, v, gradient.values, squared, beta_1, beta_2)
    rows -= decrement(m, v, step_size(lr, beta_1, beta_2, t), epsilon)

``t`` is the global step (``iterations + 1``), as TF-Addons' ``LazyAdam`` did;
``catch_up`` gives the effect of the steps a row skipped (``LazyAdam(catch_up=True)``).
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_sampling._core.xla import in_xla_context

__all__ = [
    "catch_up",
    "decay",
    "decrement",
    "moments",
    "series_length",
    "series_ratio",
    "skipped_steps_series",
    "step_size",
    "sum_lookups",
]

#: Skipped steps are summed until the next one would be below this fraction of
#: the first (the series of a row's skipped steps decays geometrically).
SERIES_TOLERANCE = 1e-9
#: Skipped steps summed at once per row (bounds the [rows, block] temporaries).
_SERIES_BLOCK = 64


def sum_lookups(
    gradient: tf.IndexedSlices, second_moment: str = "per_lookup", dtype=None
) -> tuple[tf.IndexedSlices, tf.Tensor]:
    """One row per index, with the squared term the second moment takes.

    A batch that looks a row up ``n`` times gives ``n`` slices ``g_1 .. g_n``
    for it; the row's gradient is ``g = sum_i g_i``. Its squared term is
    ``sum_i g_i**2`` with ``"per_lookup"`` (Keras 3's ``Adam`` and ``Adagrad``
    square the slices before summing them) or ``g**2`` with ``"summed"`` (TF1's
    and TF-Addons' optimizers sum duplicate indices first). Rows looked up once
    get ``g**2`` from both.

    Args:
      gradient: ``IndexedSlices``, ``values`` ``[n, *row]`` and ``indices`` ``[n]``.
      second_moment: ``"per_lookup"`` or ``"summed"``.
      dtype: The dtype of the results (default: the values'). ``"per_lookup"``
        casts each slice before it is squared, ``"summed"`` casts the sum.

    Returns:
      ``(summed, squared)``: ``IndexedSlices`` with values ``[u, *row]`` and
      unique ``indices`` ``[u]`` (in order of first appearance, the same
      ``dense_shape``), and the squared term ``[u, *row]`` in the same row order.

    Raises:
      ValueError: ``second_moment`` is neither of the two.
    """
    if second_moment not in ("per_lookup", "summed"):
        raise ValueError(
            "Argument `second_moment` must be one of ('per_lookup', 'summed'). "
            f"Received: second_moment={second_moment!r}"
        )
    dtype = gradient.values.dtype if dtype is None else dtype
    unique, positions = tf.unique(gradient.indices)
    count = tf.shape(unique)[0]
    if second_moment == "summed":
        summed = tf.cast(tf.math.unsorted_segment_sum(gradient.values, positions, count), dtype)
        return tf.IndexedSlices(summed, unique, gradient.dense_shape), tf.square(summed)
    # One pass over the slices: their sum for m, the sum of their squares for v.
    values = tf.cast(gradient.values, dtype)
    squared = tf.math.unsorted_segment_sum(tf.square(values), positions, count)
    summed = tf.math.unsorted_segment_sum(values, positions, count)
    return tf.IndexedSlices(summed, unique, gradient.dense_shape), squared


def decay(rows: tf.Tensor, learning_rate, weight_decay) -> tf.Tensor:
    """Decoupled weight decay: subtract ``rows * weight_decay * learning_rate`` from ``rows``.

    Keras' formula and order (applied before the Adam update, to the touched
    rows only when lazy).

    Args:
      rows: ``[u, *row]`` weights (or a whole variable).
      learning_rate, weight_decay: Scalars, cast to ``rows``' dtype.

    Returns:
      The decrement, ``rows``' shape.
    """
    dtype = rows.dtype
    return rows * tf.cast(weight_decay, dtype) * tf.cast(learning_rate, dtype)


def step_size(learning_rate, beta_1, beta_2, step) -> tf.Tensor:
    """Adam's bias-corrected step size ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.

    Args:
      learning_rate: Scalar float tensor (or Python float: float32); its dtype
        is the result's.
      beta_1, beta_2: Decay rates of the moments.
      step: Integer scalar ``t >= 1`` (the global step, ``iterations + 1``).

    Returns:
      Scalar ``alpha_t``.
    """
    learning_rate = tf.convert_to_tensor(learning_rate)
    dtype = learning_rate.dtype
    step = tf.cast(step, dtype)
    beta_1_power = tf.pow(tf.cast(beta_1, dtype), step)
    beta_2_power = tf.pow(tf.cast(beta_2, dtype), step)
    return learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)


def moments(m, v, gradient, squared, beta_1, beta_2) -> tuple[tf.Tensor, tf.Tensor]:
    """One step of Adam's moments, in Keras' operations and order.

    Args:
      m, v: ``[u, *row]`` first and second moments.
      gradient: ``[u, *row]`` summed gradient rows.
      squared: ``[u, *row]`` their squared term (:func:`sum_lookups`).
      beta_1, beta_2: Decay rates.

    Returns:
      ``(m + (gradient - m) * (1 - beta_1), v + (squared - v) * (1 - beta_2))``.
    """
    return m + (gradient - m) * (1 - beta_1), v + (squared - v) * (1 - beta_2)


def decrement(m, v, alpha, epsilon) -> tf.Tensor:
    """Adam's update ``(m * alpha) / (sqrt(v) + epsilon)``, subtracted from the rows.

    Args:
      m, v: ``[u, *row]`` new moments (``v``: AMSGrad's running maximum with ``amsgrad``).
      alpha: Scalar step size (:func:`step_size`).
      epsilon: Added to ``sqrt(v)``.

    Returns:
      ``[u, *row]``.
    """
    return (m * alpha) / (tf.sqrt(v) + epsilon)


def series_ratio(beta_1, beta_2, amsgrad: bool = False) -> float:
    """The ratio ``r`` of the skipped steps' series: ``beta_1 / sqrt(beta_2)``.

    A row that gets no gradient for ``j`` steps moves by about ``r**j`` times
    its last step; with AMSGrad (``v_hat`` does not decay) or ``beta_2 = 0``
    (``v`` is 0 after one skipped step, the denominator ``epsilon``) ``r`` is
    ``beta_1``. Catching up in closed form needs ``r < 1``.
    """
    if amsgrad or beta_2 == 0:
        return float(beta_1)
    return float(beta_1) / math.sqrt(float(beta_2))


def series_length(beta_1, beta_2, amsgrad: bool = False) -> int:
    """How many terms of the skipped steps' series are summed (later ones are below 1e-9 of the first).

    Raises:
      ValueError: the series does not converge (:func:`series_ratio` at least 1).
    """
    ratio = series_ratio(beta_1, beta_2, amsgrad)
    if not 0 <= ratio < 1:
        raise ValueError(
            "Argument `beta_1` must be below sqrt(beta_2) (with amsgrad or beta_2=0: below 1) "
            f"for the skipped steps to converge. Received: beta_1={beta_1!r}, beta_2={beta_2!r}"
        )
    if ratio == 0:
        return 1
    # Terms r**j are summed while r**j >= tolerance.
    return max(1, math.ceil(math.log(SERIES_TOLERANCE) / math.log(ratio)))


def skipped_steps_series(
    last, step, *, beta_1, beta_2, amsgrad: bool, terms: int, keep=None, dtype=tf.float32
) -> tf.Tensor:
    """``sum_j r**j * c(last + j) * keep**(k - j)`` for ``j = 1..k``, ``k = step - last``.

    ``r`` is :func:`series_ratio`, ``c(n)`` step ``n``'s bias correction
    ``sqrt(1 - beta_2**n) / (1 - beta_1**n)`` and ``keep = 1 - lr *
    weight_decay`` (1 without decay). Terms past ``terms`` are left out.

    Args:
      last: int64 ``[u]``, the step each row is current at (``<= step``).
      step: int64 scalar, the step to catch up to.
      beta_1, beta_2, amsgrad: Adam's settings.
      terms: int, the series' length (:func:`series_length`).
      keep: Scalar weight-decay factor in ``dtype``, or None.
      dtype: Float dtype of the result.

    Returns:
      ``[u]`` sums.
    """
    beta_1 = tf.cast(beta_1, dtype)
    beta_2_t = tf.cast(beta_2, dtype)
    ratio = beta_1 if amsgrad or beta_2 == 0 else beta_1 / tf.sqrt(beta_2_t)
    skipped = (step - last)[:, None]
    total = tf.zeros(tf.shape(last), dtype)
    for start in range(0, terms, _SERIES_BLOCK):
        stop = min(start + _SERIES_BLOCK, terms)
        j = tf.range(start + 1, stop + 1, dtype=tf.int64)[None, :]
        n = tf.cast(last[:, None] + j, dtype)
        series_terms = tf.pow(ratio, tf.cast(j, dtype)) * (
            tf.sqrt(1 - tf.pow(beta_2_t, n)) / (1 - tf.pow(beta_1, n))
        )
        if keep is not None:
            later = tf.cast(tf.maximum(skipped - j, 0), dtype)
            series_terms *= tf.pow(keep, later)
        total += tf.reduce_sum(
            tf.where(j <= skipped, series_terms, tf.zeros_like(series_terms)), axis=1
        )
    return total


def catch_up(
    m,
    v,
    last,
    step,
    learning_rate,
    *,
    beta_1,
    beta_2,
    epsilon,
    amsgrad: bool = False,
    v_hat=None,
    weight_decay=None,
    weights=None,
    terms: int | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The effect of the zero-gradient steps rows skipped since ``last``, up to ``step``.

    For ``k = step - last`` skipped steps: ``m * beta_1**k``, ``v * beta_2**k``
    and a decrement ``lr * S * m / (sqrt(v) + epsilon)`` with ``S`` the
    :func:`skipped_steps_series` (plus ``(1 - keep**k) * weights`` with weight
    decay). Exact but for two things: each skipped step's learning rate is
    ``learning_rate``, and its denominator is taken as ``beta_2**(j/2) *
    (sqrt(v) + epsilon)`` (exact for ``epsilon = 0``, with ``amsgrad``, whose
    denominator ``sqrt(v_hat)`` does not change, and with ``beta_2 = 0``, whose
    denominator is ``epsilon``).

    Args:
      m, v: ``[u, *row]`` the rows' moments at their step ``last``.
      last: int64 ``[u]``, the step each row is current at.
      step: int64 scalar, the step to catch up to.
      learning_rate: Scalar in the rows' dtype.
      beta_1, beta_2, epsilon, amsgrad: Adam's settings.
      v_hat: ``[u, *row]`` AMSGrad's running maximum (with ``amsgrad``).
      weight_decay: Decoupled weight decay, or None.
      weights: ``[u, *row]`` the rows' weights (with ``weight_decay``).
      terms: The series' length; default :func:`series_length`.

    Returns:
      ``(decrement, m, v)``: subtracting ``decrement`` from the rows and
      taking these moments gives the rows of step ``step``.
    """
    dtype = m.dtype
    if terms is None:
        terms = series_length(beta_1, beta_2, amsgrad)
    keep = None
    if weight_decay is not None:
        keep = 1 - learning_rate * tf.cast(weight_decay, dtype)
    skipped = step - last  # [u] int64, >= 0
    settings = {"beta_1": beta_1, "beta_2": beta_2, "amsgrad": amsgrad, "terms": terms}
    if in_xla_context():
        # XLA cannot pad the dynamic shape of a unique's output here: one per row.
        series = skipped_steps_series(last, step, keep=keep, dtype=dtype, **settings)
    else:
        # The series depends on a row's last step only: compute it once per value.
        unique_last, position = tf.unique(last)
        series = tf.gather(
            skipped_steps_series(unique_last, step, keep=keep, dtype=dtype, **settings), position
        )
    row_shape = tf.concat([tf.shape(last), tf.ones([tf.rank(m) - 1], tf.int32)], 0)

    def per_row(x):
        return tf.reshape(x, row_shape)

    k = tf.cast(skipped, dtype)
    if beta_2 == 0 and not amsgrad:
        # v is 0 from the first skipped step on: each denominator is epsilon.
        denominator = tf.cast(epsilon, dtype)
    else:
        denominator = tf.sqrt(v_hat if amsgrad else v) + epsilon
    rows_decrement = learning_rate * per_row(series) * (m / denominator)
    if keep is not None:
        rows_decrement += per_row(1 - tf.pow(keep, k)) * weights
    beta_1_power = per_row(tf.pow(tf.cast(beta_1, dtype), k))
    beta_2_power = per_row(tf.pow(tf.cast(beta_2, dtype), k))
    return rows_decrement, m * beta_1_power, v * beta_2_power
