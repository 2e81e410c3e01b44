"""Whether the ops being built are compiled by XLA, and the losses' default sampler there.

The one private reach for it: TensorFlow exports ``get_enclosing_xla_context``
for Keras under ``tf.__internal__`` and has no public API that says whether a
function is being compiled.

The functional losses' default samplers (TensorFlow's ops, this package's
learned-unigram op) have no XLA kernels; under XLA the losses ask
``default_sampled_values`` instead, which ``tf_sampling.samplers.xla_defaults``
provides (registered when ``tf_sampling.samplers`` is imported: the samplers
sit above the core, which cannot import them).
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
