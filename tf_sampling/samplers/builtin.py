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
random state); ``get_config`` returns the keyword arguments that rebuild them.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import tensorflow as tf

__all__ = [
    "CandidateSampler",
    "FixedUnigramSampler",
    "LogUniformSampler",
    "UniformSampler",
]

SampledValues = tuple[tf.Tensor, tf.Tensor, tf.Tensor]


def _check_range_max(range_max) -> int:
    if isinstance(range_max, bool) or not isinstance(range_max, numbers.Integral):
        raise TypeError(
            f"`range_max` (the number of classes) must be a Python int, got {range_max!r} "
            f"of type {type(range_max).__name__}."
        )
    if range_max < 1:
        raise ValueError(f"`range_max` (the number of classes) must be >= 1, got {range_max}.")
    return int(range_max)


def _check_seed(seed) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be None or a Python int, got {seed!r}.")
    return int(seed)


class CandidateSampler:
    """Base class of the built-in sampler objects.

    Args:
      range_max: int, number of classes; candidates are drawn from
        ``[0, range_max)``.
      unique: bool, whether the ``num_sampled`` candidates of one call are all
        different (sampling without replacement).
      seed: Optional int, op-level seed of the sampling op.

    Subclasses implement ``_sample`` with the ``tf.random`` op they wrap.
    """

    #: Name used by ``tf_sampling.samplers.get`` and in layer configs.
    name: str = ""

    def __init__(self, range_max: int, unique: bool = True, seed: int | None = None):
        self.range_max = _check_range_max(range_max)
        if not isinstance(unique, bool):
            raise TypeError(f"`unique` must be a bool, got {unique!r}.")
        self.unique = unique
        self.seed = _check_seed(seed)

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
        true_classes = tf.cast(true_classes, tf.int64)
        values = self._sample(true_classes, int(num_true), int(num_sampled))
        return tuple(tf.stop_gradient(v) for v in values)

    def _sample(self, true_classes: tf.Tensor, num_true: int, num_sampled: int) -> SampledValues:
        raise NotImplementedError

    def get_config(self) -> dict:
        """Returns the sampler's own options (``range_max`` and ``seed`` excluded).

        Returns:
          dict: keyword arguments that, with ``range_max`` and ``seed``, rebuild
          the sampler.
        """
        return {"unique": self.unique}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}(range_max={self.range_max}, {options}, seed={self.seed})"


class LogUniformSampler(CandidateSampler):
    """Log-uniform (Zipfian) sampler, ``tf.random.log_uniform_candidate_sampler``.

    ``P(class) = (log(class + 2) - log(class + 1)) / log(range_max + 1)``: right
    when class ids are sorted by decreasing frequency. TensorFlow's default for
    ``sampled_softmax_loss`` and ``nce_loss``.
    """

    name = "log_uniform"

    def _sample(self, true_classes, num_true, num_sampled):
        return tf.random.log_uniform_candidate_sampler(
            true_classes=true_classes,
            num_true=num_true,
            num_sampled=num_sampled,
            unique=self.unique,
            range_max=self.range_max,
            seed=self.seed,
        )


class UniformSampler(CandidateSampler):
    """Uniform sampler, ``tf.random.uniform_candidate_sampler``."""

    name = "uniform"

    def _sample(self, true_classes, num_true, num_sampled):
        return tf.random.uniform_candidate_sampler(
            true_classes=true_classes,
            num_true=num_true,
            num_sampled=num_sampled,
            unique=self.unique,
            range_max=self.range_max,
            seed=self.seed,
        )


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

    Raises:
      ValueError: neither or both of ``unigrams`` and ``vocab_file`` are given,
        or ``len(unigrams)`` does not match ``range_max - num_reserved_ids``.
    """

    name = "fixed_unigram"

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
        if (unigrams is None) == (not vocab_file):
            raise ValueError(
                "The 'fixed_unigram' sampler needs exactly one of `unigrams` or `vocab_file`; "
                f"received unigrams={'None' if unigrams is None else 'a list'}, "
                f"vocab_file={vocab_file!r}."
            )
        if isinstance(num_reserved_ids, bool) or not isinstance(num_reserved_ids, numbers.Integral):
            raise TypeError(f"`num_reserved_ids` must be an int, got {num_reserved_ids!r}.")
        if not 0 <= num_reserved_ids < self.range_max:
            raise ValueError(
                f"`num_reserved_ids` must be in [0, range_max={self.range_max}), "
                f"got {num_reserved_ids}."
            )
        if unigrams is not None:
            unigrams = [float(u) for u in unigrams]
            expected = self.range_max - num_reserved_ids
            if len(unigrams) != expected:
                raise ValueError(
                    f"`unigrams` must hold range_max - num_reserved_ids = {expected} values, "
                    f"got {len(unigrams)}."
                )
            if any(u < 0 for u in unigrams):
                raise ValueError("`unigrams` must be non-negative counts or probabilities.")
        if not isinstance(distortion, numbers.Real) or isinstance(distortion, bool):
            raise TypeError(f"`distortion` must be a float, got {distortion!r}.")
        self.unigrams = unigrams
        self.vocab_file = vocab_file or None
        self.distortion = float(distortion)
        self.num_reserved_ids = int(num_reserved_ids)

    def _sample(self, true_classes, num_true, num_sampled):
        return tf.random.fixed_unigram_candidate_sampler(
            true_classes=true_classes,
            num_true=num_true,
            num_sampled=num_sampled,
            unique=self.unique,
            range_max=self.range_max,
            vocab_file=self.vocab_file or "",
            distortion=self.distortion,
            num_reserved_ids=self.num_reserved_ids,
            unigrams=self.unigrams or (),
            seed=self.seed,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            unigrams=self.unigrams,
            vocab_file=self.vocab_file,
            distortion=self.distortion,
            num_reserved_ids=self.num_reserved_ids,
        )
        return config

    def __repr__(self) -> str:
        source = f"vocab_file={self.vocab_file!r}" if self.vocab_file else "unigrams=[...]"
        return (
            f"FixedUnigramSampler(range_max={self.range_max}, {source}, "
            f"distortion={self.distortion}, unique={self.unique}, seed={self.seed})"
        )
