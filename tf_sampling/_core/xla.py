"""Whether the ops being built are compiled by XLA, and the losses' default sampler there.

The one private reach for it: TensorFlow exports ``get_enclosing_xla_context``
for Keras under ``tf.__internal__`` and has no public API that says whether a
function is being compiled.

The functional losses' default samplers (TensorFlow's ops, this package's
learned-unigram op) have no XLA kernels; under XLA the losses ask
``default_sampled_values`` instead, which ``tf_sampling.samplers.xla_defaults``
provides (registered when ``tf_sampling.samplers`` is imported: the samplers
sit above the core, which cannot import them).

Range checks of ids are asserts, which XLA drops: the losses mark rows with
a bad id NaN there instead (``out_of_range_rows``, ``nan_rows``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

_get_xla_context = getattr(tf.__internal__, "get_enclosing_xla_context", lambda: None)


def in_xla_context() -> bool:
    """Whether the ops built now are compiled by XLA (e.g. in ``tf.function(jit_compile=True)``).

    TensorFlow's CPU-only ops (its samplers, ``tf.nn.compute_accidental_hits``)
    and in-place updates cannot run there; their plain-op equivalents can.
    """
    return _get_xla_context() is not None


def out_of_range_rows(ids: tf.Tensor, num_classes: int) -> tf.Tensor:
    """bool ``[n]``: rows of int ``[n, k]`` ``ids`` holding an id outside ``[0, num_classes)``.

    XLA drops ``Assert``, so the range checks of ``validation`` never fire in
    compiled code, and the lookups clamp bad ids into a plausible loss; the
    losses mark these rows with :func:`nan_rows` instead.
    """
    return tf.reduce_any((ids < 0) | (ids >= num_classes), axis=1)


def nan_rows(values: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``values`` ``[n, ...]`` with every entry of the ``rows`` (bool ``[n]``) made NaN.

    An addition: the gradient passes through unchanged, so a NaN row makes
    every gradient it reaches NaN too, never a plausible number.
    """
    nan = tf.where(rows, tf.constant(np.nan, values.dtype), tf.zeros([], values.dtype))
    return values + tf.reshape(nan, [-1] + [1] * (values.shape.rank - 1))


_DEFAULT_SAMPLER = None


def set_default_sampler(sample) -> None:
    """Registers ``sample(name, true_classes, num_true, num_sampled, num_classes, unique, seed)``."""
    global _DEFAULT_SAMPLER
    _DEFAULT_SAMPLER = sample


def default_sampled_values(
    name: str, true_classes: tf.Tensor, num_true: int, num_sampled: int, num_classes: int, seed
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The default sampler's ``(sampled, true_expected, sampled_expected)`` under XLA (unique).

    Args:
      name: distribution, ``"log_uniform"`` or ``"learned_unigram"``.
      true_classes: int64 ``[batch_size, num_true]`` (checked).
      num_true, num_sampled, num_classes: ints (checked).
      seed: Optional int, the op-level seed.

    Raises:
      RuntimeError: ``tf_sampling.samplers`` was never imported.
    """
    if _DEFAULT_SAMPLER is None:
        raise RuntimeError(
            "The losses' compilable default samplers live in tf_sampling.samplers; "
            "`import tf_sampling` (or tf_sampling.samplers) before compiling a loss "
            "without sampled_values."
        )
    return _DEFAULT_SAMPLER(
        name, true_classes, num_true, num_sampled, num_classes, unique=True, seed=seed
    )
