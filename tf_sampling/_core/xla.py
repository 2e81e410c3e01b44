"""Whether the ops being built are compiled by XLA.

The one private reach for it: TensorFlow exports ``get_enclosing_xla_context``
for Keras under ``tf.__internal__`` and has no public API that says whether a
function is being compiled.
"""

from __future__ import annotations

import tensorflow as tf

_get_xla_context = getattr(tf.__internal__, "get_enclosing_xla_context", lambda: None)


def in_xla_context() -> bool:
    """Whether the ops built now are compiled by XLA (e.g. in ``tf.function(jit_compile=True)``).

    TensorFlow's CPU-only ops (its samplers, ``tf.nn.compute_accidental_hits``)
    and in-place updates cannot run there; their plain-op equivalents can.
    """
    return _get_xla_context() is not None
