"""The fixed-unigram sampler's options: weights, ``distortion``, ``vocab_file``, reserved ids.

Checked here once, the way TensorFlow's ``fixed_unigram_candidate_sampler``
will use them, for both the ``tf.random`` sampler object and its compilable
twin (``tf_sampling.samplers``); messages in Keras' words (see ``checks``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tf_sampling._core.checks import check_int

#: Most rejection draws a unique sample of a fixed distribution may need at
#: worst (about a minute of TensorFlow's sampler).
MAX_UNIQUE_DRAWS = 2**32


def check_distortion(distortion) -> float:
    """Returns a fixed-unigram ``distortion`` (the weights' exponent) as a finite float.

    Raises:
      TypeError: not a real number.
      ValueError: NaN or infinite.
    """
    if not isinstance(distortion, numbers.Real) or isinstance(distortion, bool):
        raise TypeError(
            f"Argument `distortion` must be a float. Received: distortion={distortion!r}"
        )
    if not math.isfinite(distortion):
        raise ValueError(
            f"Argument `distortion` must be finite. Received: distortion={distortion!r}"
        )
    return float(distortion)


def check_unigrams(unigrams, distortion, source: str = "unigrams") -> tuple[list[float], int]:
    """Checks fixed-unigram weights the way TensorFlow's sampler will use them.

    TensorFlow samples class ``i`` with probability proportional to
    ``float32(unigrams[i]) ** distortion`` (in float32) and never checks them:
    all-zero, NaN or infinite weights, or a distortion that overflows or
    underflows them all, give NaN expected counts or a sampler that never
    returns.

    Args:
      unigrams: Sequence of non-negative counts or probabilities.
      distortion: Real number, the exponent.
      source: Where the values came from, quoted in errors (``"unigrams"`` or
        ``"vocab_file '...'"``).

    Returns:
      tuple: ``(unigrams as floats, number of classes of positive weight)``.

    Raises:
      TypeError: ``distortion`` is not a real number.
      ValueError: a value that is negative, NaN or infinite (in float32), a
        NaN/infinite ``distortion``, or distorted weights that are not all
        finite or whose sum is not a positive finite float32.
    """
    check_distortion(distortion)
    try:
        values = [float(u) for u in unigrams]
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"Argument `{source}` must be a sequence of numbers. Received: {err}"
        ) from None
    as_float32 = np.asarray(values, np.float32)
    bad = np.flatnonzero(~np.isfinite(as_float32) | (as_float32 < 0))
    if bad.size:
        raise ValueError(
            f"Argument `{source}` must be non-negative finite float32 values. Received: "
            f"{values[bad[0]]!r} at index {bad[0]}"
        )
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        weights = np.power(as_float32, np.float32(distortion))
    bad = np.flatnonzero(~np.isfinite(weights))
    total = float(np.sum(weights, dtype=np.float64))
    if bad.size or not 0 < total <= float(np.finfo(np.float32).max):
        detail = (
            f"{values[bad[0]]!r} ** {distortion!r} at index {bad[0]} is not finite"
            if bad.size
            else f"their sum is {total!r}"
        )
        raise ValueError(
            f"Argument `{source}` raised to `distortion` must be finite float32 weights with a "
            f"positive finite sum. Received: distortion={distortion!r}: {detail}"
        )
    return values, int(np.count_nonzero(weights))


def read_vocab_counts(path: str) -> list[float]:
    """Reads the counts of a fixed-unigram ``vocab_file`` as TensorFlow does.

    Each line is split at commas and its last field is the count.

    Args:
      path: File path (any ``tf.io.gfile`` scheme).

    Returns:
      list: one float per line.

    Raises:
      ValueError: a line whose last field is not a number (TensorFlow's
        "Wrong vocabulary format").
    """
    with tf.io.gfile.GFile(path, "r") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # The newline that ends the last line.
    counts = []
    for number, line in enumerate(lines, 1):
        field = line.rstrip("\r").rsplit(",", 1)[-1].strip()
        try:
            counts.append(float(field))
        except ValueError:
            try:
                counts.append(float.fromhex(field))
            except ValueError:
                raise ValueError(
                    f"Argument `vocab_file` {path!r} must end each line with a count. Received: "
                    f"line {number}: {line!r}"
                ) from None
    return counts


class FixedUnigramOptions(NamedTuple):
    """The checked options of a fixed-unigram sampler (see :func:`check_fixed_unigram`)."""

    #: The ``unigrams`` given, as floats, or None when a ``vocab_file`` was given.
    unigrams: list[float] | None
    #: The file path, or None.
    vocab_file: str | None
    distortion: float
    num_reserved_ids: int
    #: The weights before distortion (from ``unigrams`` or the file), or None
    #: when the file cannot be read yet.
    values: list[float] | None
    #: Classes of positive weight (``range_max`` while the file is unread).
    num_drawable: int


def check_fixed_unigram(
    range_max: int,
    unigrams: Sequence[float] | None,
    vocab_file: str | None,
    distortion,
    num_reserved_ids,
    require_file: bool = False,
) -> FixedUnigramOptions:
    """Checks the options of a fixed-unigram sampler, reading ``vocab_file`` when it exists.

    Args:
      range_max: int >= 1, number of classes.
      unigrams: Optional sequence of ``range_max - num_reserved_ids`` weights.
      vocab_file: Optional path of the counts file (last comma-separated
        field of each line).
      distortion: float, exponent of the weights.
      num_reserved_ids: int >= 0, leading class ids never drawn.
      require_file: Whether a ``vocab_file`` must be readable now (the
        compilable sampler reads it once; TensorFlow's op reads it later).

    Returns:
      FixedUnigramOptions.

    Raises:
      ValueError: neither or both of ``unigrams`` and ``vocab_file``; a
        ``num_reserved_ids`` out of range; a value count other than
        ``range_max - num_reserved_ids``; bad weights or ``distortion`` (see
        :func:`check_unigrams`); a malformed or (``require_file``) missing file.
      TypeError: a non-integer ``num_reserved_ids`` or non-real ``distortion``.
    """
    range_max = check_int(range_max, "range_max")
    if vocab_file and require_file and not tf.io.gfile.exists(vocab_file):
        raise ValueError(
            "Argument `vocab_file` must be a readable file when a compilable fixed-unigram "
            f"sampler is built (it reads it once). Received: vocab_file={vocab_file!r}"
        )
    if (unigrams is None) == (not vocab_file):
        given = "None" if unigrams is None else "a list"
        raise ValueError(
            "Argument `unigrams` or `vocab_file` must be given (exactly one of them). Received: "
            f"unigrams={given}, vocab_file={vocab_file!r}"
        )
    num_reserved_ids = check_int(num_reserved_ids, "num_reserved_ids", 0)
    if num_reserved_ids >= range_max:
        raise ValueError(
            f"Argument `num_reserved_ids` must be in [0, range_max={range_max}). Received: "
            f"num_reserved_ids={num_reserved_ids}"
        )
    expected = range_max - num_reserved_ids
    source, values = "unigrams", unigrams
    if vocab_file and tf.io.gfile.exists(vocab_file):
        source, values = f"vocab_file {vocab_file!r}", read_vocab_counts(vocab_file)
    # Classes that can be drawn; unknown until TF reads a missing file.
    num_drawable = range_max
    if values is not None:
        values = list(values)
        if len(values) != expected:
            raise ValueError(
                f"Argument `{source}` must hold range_max - num_reserved_ids = {expected} values. "
                f"Received: {len(values)} values"
            )
        values, num_drawable = check_unigrams(values, distortion, source)
    elif not isinstance(distortion, numbers.Real) or isinstance(distortion, bool):
        # The rest is checked when TensorFlow reads the file.
        raise TypeError(
            f"Argument `distortion` must be a float. Received: distortion={distortion!r}"
        )
    return FixedUnigramOptions(
        unigrams=values if unigrams is not None else None,
        vocab_file=vocab_file or None,
        distortion=float(distortion),
        num_reserved_ids=num_reserved_ids,
        values=values,
        num_drawable=num_drawable,
    )


def check_unique_draws(num_sampled: int, worst_draws: float) -> None:
    """Refuses a unique sample whose rejection sampling could take forever.

    Args:
      num_sampled: int, the sample size.
      worst_draws: Expected rejection draws if the heaviest classes are
        picked first (the likely order when the weights are skewed).

    Raises:
      ValueError: ``worst_draws > MAX_UNIQUE_DRAWS``.
    """
    if worst_draws > MAX_UNIQUE_DRAWS:
        raise ValueError(
            "Argument `num_sampled` must be small enough for unique rejection sampling of these "
            f"weights to end (at most 2^32 expected draws). Received: num_sampled={num_sampled}, "
            f"which may need about {worst_draws:.3g} draws: the classes left after the "
            f"{num_sampled - 1} heaviest hold too little weight. Use unique=False or fewer "
            "samples."
        )


def check_drawable(num_sampled: int, unique: bool, num_drawable: int) -> None:
    """Checks a unique sample fits in the classes of positive weight (TF would reject forever).

    Raises:
      ValueError: ``unique`` and ``num_sampled > num_drawable``.
    """
    if unique and num_sampled > num_drawable:
        raise ValueError(
            f"Argument `num_sampled` must be <= the {num_drawable} classes of positive weight "
            f"when unique=True. Received: num_sampled={num_sampled}"
        )
