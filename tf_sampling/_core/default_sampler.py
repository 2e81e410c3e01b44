"""The one hook the functional losses ask for their default sampler, compiled or not.

Given no ``sampled_values``, ``sampled_softmax_loss`` and ``nce_loss`` draw
from the log-uniform distribution and ``rank_sampled_softmax_loss`` from the
learned-unigram one, as TensorFlow does. The samplers that draw them sit
above the core (the learned-unigram op in ``tf_sampling.ops``; the compilable
samplers XLA needs, since TensorFlow's sampler ops have no XLA kernels, in
``tf_sampling.samplers``), and the core imports neither: ``tf_sampling.samplers``
registers the answer here when it is imported (``samplers.xla_defaults``).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

SampledValues = tuple[tf.Tensor, tf.Tensor, tf.Tensor]

#: ``sample(name, true_classes, num_true, num_sampled, num_classes, seed)``.
Provider = Callable[[str, tf.Tensor, int, int, int, "int | None"], SampledValues]

_PROVIDER: Provider | None = None


def register(provider: Provider) -> None:
    """Makes ``provider`` the functional losses' default sampler (``tf_sampling.samplers`` does)."""
    global _PROVIDER
    _PROVIDER = provider


def sampled_values(
    name: str, true_classes: tf.Tensor, num_true: int, num_sampled: int, num_classes: int, seed
) -> SampledValues:
    """The default sampler's unique ``(sampled, true_expected, sampled_expected)`` for a loss.

    Not compiled: TensorFlow's op of that distribution (this package's op for
    the learned unigram); under XLA: the compilable sampler of the same
    distribution.

    Args:
      name: distribution, ``"log_uniform"`` or ``"learned_unigram"``.
      true_classes: int64 ``[batch_size, num_true]`` (checked).
      num_true, num_sampled, num_classes: ints (checked).
      seed: Optional int, the op-level seed.

    Returns:
      tuple: int64 ``[num_sampled]``, float32 ``[batch_size, num_true]``,
      float32 ``[num_sampled]``.

    Raises:
      RuntimeError: ``tf_sampling.samplers`` was never imported.
    """
    if _PROVIDER is None:
        raise RuntimeError(
            "The functional losses' default samplers live in tf_sampling.samplers; "
            "`import tf_sampling` (or tf_sampling.samplers) before calling a loss without "
            "sampled_values."
        )
    return _PROVIDER(name, true_classes, num_true, num_sampled, num_classes, seed)
