"""LazyAdam's sparse row update as one call of this package's C++ op.

``tf_sampling.optimizers.LazyAdam`` uses it on CPU when the op library is
built; its own TensorFlow ops compute the same bits everywhere else (under
XLA, on GPUs, with AMSGrad or ``catch_up``).
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling.ops import _loader

__all__ = ["lazy_adam_kernel_available", "resource_sparse_apply_lazy_adam"]


def lazy_adam_kernel_available() -> bool:
    """Returns whether the op library (and so the fused update) can be loaded.

    Returns:
      bool: False when the library is missing, stale or fails to load (the
      reason is what ``load_op_library()`` raises).
    """
    try:
        _loader.load_op_library()
    except _loader.OpLibraryError:
        return False
    return True


def resource_sparse_apply_lazy_adam(
    var: tf.Variable,
    m: tf.Variable,
    v: tf.Variable,
    grad: tf.Tensor,
    indices: tf.Tensor,
    *,
    alpha: tf.Tensor,
    one_minus_beta_1: tf.Tensor,
    one_minus_beta_2: tf.Tensor,
    epsilon: tf.Tensor,
    learning_rate: tf.Tensor,
    weight_decay: tf.Tensor | None = None,
    per_lookup_second_moment: bool = False,
):
    """One lazy Adam step on the rows ``indices`` names, in place.

    For each distinct index ``r`` with rows ``g_1 .. g_k`` of ``grad``
    (``k >= 1``, in order of appearance): ``g = g_1 + ... + g_k`` and
    ``s = g * g`` (or ``g_1**2 + ... + g_k**2`` with
    ``per_lookup_second_moment``); then, on row ``r`` and in this order,
    ``var -= var * weight_decay * learning_rate`` (if ``weight_decay`` is
    given), ``m += (g - m) * one_minus_beta_1``,
    ``v += (s - v) * one_minus_beta_2`` and
    ``var -= m * alpha / (sqrt(v) + epsilon)``. Other rows are not touched.

    Args:
      var: Resource variable ``[rows, *row]``, float32 or float64, on a CPU.
      m: First-moment variable, ``var``'s shape and dtype.
      v: Second-moment variable, ``var``'s shape and dtype.
      grad: ``[n, *row]`` gradient rows, ``var``'s dtype.
      indices: int32 or int64 ``[n]`` row ids in ``[0, rows)``; may repeat.
      alpha: Scalar bias-corrected step,
        ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.
      one_minus_beta_1: Scalar ``1 - beta_1``.
      one_minus_beta_2: Scalar ``1 - beta_2``.
      epsilon: Scalar added to ``sqrt(v)``.
      learning_rate: Scalar learning rate (used by the weight decay only).
      weight_decay: Optional scalar decoupled weight decay.
      per_lookup_second_moment: bool, see above.

    Returns:
      The op (no outputs); eagerly, None.

    Raises:
      OpLibraryError: the op library is missing or stale.
      tf.errors.InvalidArgumentError: an index outside ``[0, rows)`` or shapes
        or dtypes that do not agree; nothing is changed then.
    """
    library = _loader.load_op_library()
    learning_rate = tf.convert_to_tensor(learning_rate)
    return library.tf_sampling_resource_sparse_apply_lazy_adam(
        var=var.handle,
        m=m.handle,
        v=v.handle,
        alpha=alpha,
        one_minus_beta_1=one_minus_beta_1,
        one_minus_beta_2=one_minus_beta_2,
        epsilon=epsilon,
        learning_rate=learning_rate,
        weight_decay=(tf.zeros([], learning_rate.dtype) if weight_decay is None else weight_decay),
        grad=grad,
        indices=indices,
        per_lookup_second_moment=bool(per_lookup_second_moment),
        use_weight_decay=weight_decay is not None,
    )
