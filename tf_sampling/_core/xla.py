"""Whether the ops being built are compiled by XLA, and what the losses do differently there.

The one private reach for it: TensorFlow exports ``get_enclosing_xla_context``
for Keras under ``tf.__internal__`` and has no public API that says whether a
function is being compiled.

The functional losses' default samplers have no XLA kernels; the losses ask
``default_sampler``, which answers compiled or not.

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

    XLA drops ``Assert``, so the range checks (``checks.assert_in_range``) never fire in
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
