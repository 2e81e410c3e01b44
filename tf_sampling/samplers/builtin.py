"""Candidate-sampler objects over TensorFlow's built-in ``tf.random`` samplers.

Every sampler object has the same interface as
``tf_sampling.samplers.learned_unigram.LearnedUnigramSampler``::

    sampled_candidates, true_expected_count, sampled_expected_count = (
        sampler.sample(true_classes, num_true, num_sampled))

with ``true_classes`` int64 ``[batch_size, num_true]`` and the results shaped
``[num_sampled]`` (int64), ``[batch_size, num_true]`` (float32) and
``[num_sampled]`` (float32): exactly the ``sampled_values`` triple the
functional losses in ``tf_sampling.nn`` accept.

The built-in samplers are stateless Python objects (the TF ops keep their own
random state) that follow ``tf_sampling.samplers.base.Sampler``;
``sampler_options`` (also spelled ``get_config``) returns the keyword
arguments that, with ``range_max`` and ``seed``, rebuild them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_sampling._core import fixed_unigram_args
from tf_sampling._core.fixed_unigram_args import read_vocab_counts
from tf_sampling.samplers import base

__all__ = [
    "CandidateSampler",
    "FixedUnigramSampler",
    "LogUniformSampler",
    "UniformSampler",
    "read_vocab_counts",
    "unique_draws_bound",
]

SampledValues = base.SampledValues


class CandidateSampler(base.Sampler):
    """Base class of the built-in sampler objects.

    Args:
      range_max: int, number of classes; candidates are drawn from
        ``[0, range_max)``.
      unique: bool, whether the ``num_sampled`` candidates of one call are all
        different (sampling without replacement).
      seed: Optional int, op-level seed of the sampling op.

    Subclasses name the ``tf.random`` op they wrap in ``sampler_op`` and add
    its own options in ``_op_options`` (or override ``_sample`` entirely).
    ``name`` is the older spelling of ``sampler_name``.
    """

    #: The ``tf.random.*_candidate_sampler`` that ``_sample`` calls.
    sampler_op = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = cls.sampler_name

    def __init__(self, range_max: int, unique: bool = True, seed: int | None = None):
        self._set_sampler_options(range_max, unique, seed)

    def sample(self, true_classes, num_true: int, num_sampled: int) -> SampledValues:
        """Draws ``num_sampled`` candidates for a batch.

        Args:
          true_classes: int64 ``[batch_size, num_true]`` target classes.
          num_true: int, number of target classes per example.
          num_sampled: int, number of candidates to draw.

        Returns:
          tuple: ``(sampled_candidates int64 [num_sampled], true_expected_count
          float32 [batch_size, num_true], sampled_expected_count float32
          [num_sampled])``. The gradient is stopped on all three.
        """
        num_true, num_sampled = self._check_call(num_true, num_sampled)
        true_classes = tf.cast(true_classes, tf.int64)
        values = self._sample(true_classes, num_true, num_sampled)
        return tuple(tf.stop_gradient(v) for v in values)

    def _sample(self, true_classes: tf.Tensor, num_true: int, num_sampled: int) -> SampledValues:
        if self.sampler_op is None:
            raise NotImplementedError(f"{type(self).__name__} sets no `sampler_op`.")
        return self.sampler_op(
            true_classes=true_classes,
            num_true=num_true,
            num_sampled=num_sampled,
            unique=self.unique,
            range_max=self.range_max,
            seed=self.seed,
            **self._op_options(),
        )

    def _op_options(self) -> dict:
        """Returns the keyword arguments of ``sampler_op`` beyond the common ones."""
        return {}

    def get_config(self) -> dict:
        """Same as ``sampler_options``: the options that, with ``range_max`` and ``seed``, rebuild it."""
        return self.sampler_options()

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.sampler_options().items())
        return f"{type(self).__name__}(range_max={self.range_max}, {options}, seed={self.seed})"


@base.register
class LogUniformSampler(CandidateSampler):
    """Log-uniform (Zipfian) sampler, ``tf.random.log_uniform_candidate_sampler``.

    ``P(class) = (log(class + 2) - log(class + 1)) / log(range_max + 1)``: right
    when class ids are sorted by decreasing frequency. TensorFlow's default for
    ``sampled_softmax_loss`` and ``nce_loss``.
    """

    sampler_name = "log_uniform"
    sampler_op = staticmethod(tf.random.log_uniform_candidate_sampler)


@base.register
class UniformSampler(CandidateSampler):
    """Uniform sampler, ``tf.random.uniform_candidate_sampler``."""

    sampler_name = "uniform"
    sampler_op = staticmethod(tf.random.uniform_candidate_sampler)


@base.register
class FixedUnigramSampler(CandidateSampler):
    """Sampler from a fixed unigram distribution, ``tf.random.fixed_unigram_candidate_sampler``.

    Give the distribution either as ``unigrams`` (one count or relative
    probability per class id, after the reserved ids) or as ``vocab_file`` (a
    CSV-like file whose last field on each line is that count, one line per
    class id, as TensorFlow reads it). Probabilities are raised to the power
    ``distortion`` before sampling (``0.75`` is word2vec's choice).

    Args:
      range_max: int, number of classes.
      unigrams: Optional sequence of ``range_max - num_reserved_ids`` floats.
      vocab_file: Optional path of the counts file (must still exist when a
        saved model is loaded and trained again).
      distortion: float, exponent applied to the unigram probabilities.
      num_reserved_ids: int, number of leading class ids that are never
        sampled (probability 0), e.g. padding.
      unique: bool, sample without replacement.
      seed: Optional int, op-level seed.

    The weights ``unigram ** distortion`` are checked when the sampler is
    built (for ``vocab_file``, if the file can be read then): TensorFlow
    would take all-zero, NaN or infinite weights and give NaN losses, or
    never return from a unique draw.

    Raises:
      ValueError: neither or both of ``unigrams`` and ``vocab_file`` are given;
        ``len(unigrams)`` (or the file's line count) is not ``range_max -
        num_reserved_ids``; a weight that is negative, NaN or infinite, or
        ``distortion`` making them infinite or all zero; a malformed file.
      TypeError: a non-integer ``num_reserved_ids`` or non-real
        ``distortion``.
    """

    sampler_name = "fixed_unigram"
    sampler_op = staticmethod(tf.random.fixed_unigram_candidate_sampler)
    option_names = ("unigrams", "vocab_file", "distortion", "num_reserved_ids")

    def __init__(
        self,
        range_max: int,
        unigrams: Sequence[float] | None = None,
        vocab_file: str | None = None,
        distortion: float = 1.0,
        num_reserved_ids: int = 0,
        unique: bool = True,
        seed: int | None = None,
    ):
        super().__init__(range_max, unique=unique, seed=seed)
        options = fixed_unigram_args.check_fixed_unigram(
            self.range_max, unigrams, vocab_file, distortion, num_reserved_ids
        )
        self.unigrams = options.unigrams
        self.vocab_file = options.vocab_file
        self.distortion = options.distortion
        self.num_reserved_ids = options.num_reserved_ids
        # Classes that can be drawn; unknown until TF reads a missing file.
        self.num_drawable = options.num_drawable
        self._unique_draws = (
            None if options.values is None else unique_draws_bound(options.values, self.distortion)
        )

    def _check_sample_size(self, num_sampled: int) -> None:
        super()._check_sample_size(num_sampled)
        # TF would reject repeats forever.
        fixed_unigram_args.check_drawable(num_sampled, self.unique, self.num_drawable)
        if self.unique and self._unique_draws is not None:
            fixed_unigram_args.check_unique_draws(
                num_sampled, float(self._unique_draws[num_sampled - 1])
            )

    def _op_options(self) -> dict:
        return {
            "vocab_file": self.vocab_file or "",
            "distortion": self.distortion,
            "num_reserved_ids": self.num_reserved_ids,
            "unigrams": self.unigrams or (),
        }

    def sampler_options(self) -> dict:
        options = super().sampler_options()
        options.update(
            unigrams=self.unigrams,
            vocab_file=self.vocab_file,
            distortion=self.distortion,
            num_reserved_ids=self.num_reserved_ids,
        )
        return options

    def __repr__(self) -> str:
        source = f"vocab_file={self.vocab_file!r}" if self.vocab_file else "unigrams=[...]"
        return (
            f"FixedUnigramSampler(range_max={self.range_max}, {source}, "
            f"distortion={self.distortion}, unique={self.unique}, seed={self.seed})"
        )


def unique_draws_bound(unigrams: Sequence[float], distortion: float) -> np.ndarray:
    """Expected rejection draws of unique samples of each size, heaviest classes first.

    When the ``j`` heaviest classes have been picked, the next new class
    takes ``1 / tail_j`` draws on average, ``tail_j`` being the weight of
    the others; skewed weights are picked about in that order.

    Args:
      unigrams: The checked weights before distortion.
      distortion: The exponent TensorFlow applies (in float32).

    Returns:
      np.ndarray: float64 ``[len(unigrams)]``; entry ``k - 1`` is the bound
      for ``num_sampled = k`` (inf past the classes of positive weight).
    """
    with np.errstate(under="ignore"):
        weights = np.power(np.asarray(unigrams, np.float32), np.float32(distortion))
    ascending = np.sort(weights.astype(np.float64))
    # tail[j]: weight left once the j heaviest are picked, summed from the
    # smallest up so that a tiny tail is not lost to cancellation.
    tail = np.cumsum(ascending)[::-1] / ascending.sum()
    with np.errstate(divide="ignore"):
        return np.cumsum(1.0 / tail)
