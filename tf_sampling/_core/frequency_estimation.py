"""Streaming frequency estimation of candidate ids (Yi et al., RecSys 2019, Algorithms 2 and 3).

For each of ``num_hashes`` hash functions ``h_k`` there are two arrays of
``num_buckets`` entries: ``A_k`` (the last step a bucket was seen) and
``B_k`` (its estimated gap, in steps, between two arrivals). At step ``t``
(1, 2, ...), each arrival of an id ``y`` does, in the paper's order::

    B_k[h_k(y)] <- (1 - alpha) * B_k[h_k(y)] + alpha * (t - A_k[h_k(y)])
    A_k[h_k(y)] <- t

and the estimate is ``p(y) = 1 / max_k B_k[h_k(y)]`` (the largest gap: a
collision only shortens a bucket's gap). ``p`` is the expected number of
arrivals of ``y`` per step (per batch); it exceeds 1 for ids that come
several times in one batch.

Duplicates within a batch: the paper's sequential rule, applied to a batch's
arrivals one by one, gives the same result in every order: a bucket hit
``n`` times at step ``t`` takes the gap ``t - A`` once and then ``n - 1``
gaps of 0, i.e.::

    B <- (1 - alpha)^n * B + alpha * (1 - alpha)^(n - 1) * (t - A)

which is what :func:`gap_update` computes, for every arrival at once. The
arrays start at 0 (so the first estimates are rough until a bucket has been
seen about ``1 / alpha`` times, unless the estimate divides by the weight
the average has given to observations, Adam's bias correction); a bucket
never seen has ``B = 0`` and its ids get :data:`UNSEEN_PROBABILITY`.

Pure TensorFlow (no Keras): the Keras layer
``tf_sampling.layers.StreamingFrequencyEstimator`` holds the arrays as
variables and calls these functions.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

__all__ = [
    "UNSEEN_PROBABILITY",
    "check_estimator_options",
    "gap_update",
    "hash_keys",
    "id_keys",
    "probability_from_gaps",
]

# The estimate of an id whose buckets were never seen: no correction (log 1 = 0).
UNSEEN_PROBABILITY = 1.0

# Odd 64-bit multipliers, one per hash function (cycled past six with a shift).
_MULTIPLIERS = (
    0xBF58476D1CE4E5B9,
    0x94D049BB133111EB,
    0x9E3779B97F4A7C15,
    0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD,
    0xC4CEB9FE1A85EC53,
)
# Strings are first reduced to a 63-bit fingerprint (FarmHash, stable across runs).
_STRING_BUCKETS = (1 << 63) - 1


def check_estimator_options(num_buckets, num_hashes, learning_rate) -> tuple[int, int, float]:
    """Checks the estimator's options; returns them as ``(int, int, float)``.

    Raises:
      TypeError, ValueError: naming the option and the value received.
    """
    for value, name in ((num_buckets, "num_buckets"), (num_hashes, "num_hashes")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be a positive int, got {value!r}.")
        if value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    if int(num_buckets) * int(num_hashes) >= 2**31:
        raise ValueError(
            "`num_buckets * num_hashes` must be below 2**31 (int32 bucket indices), got "
            f"num_buckets={num_buckets!r}, num_hashes={num_hashes!r}."
        )
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(f"`learning_rate` must be a number in (0, 1], got {learning_rate!r}.")
    if not 0 < learning_rate <= 1:
        raise ValueError(f"`learning_rate` must be in (0, 1], got {learning_rate!r}.")
    return int(num_buckets), int(num_hashes), float(learning_rate)


def id_keys(ids) -> tf.Tensor:
    """int64 keys of a 1-D tensor of ids: integers as they are, strings by fingerprint.

    Raises:
      TypeError: ids are neither integers nor strings.
    """
    ids = tf.convert_to_tensor(ids)
    if ids.dtype == tf.string:
        return tf.strings.to_hash_bucket_fast(tf.reshape(ids, [-1]), _STRING_BUCKETS)
    if not ids.dtype.is_integer:
        raise TypeError(f"`ids` must be integer or string ids, got dtype {ids.dtype.name}.")
    return tf.cast(tf.reshape(ids, [-1]), tf.int64)


def hash_keys(keys: tf.Tensor, num_hashes: int, num_buckets: int) -> tf.Tensor:
    """Bucket of each key under each hash function, as flat indices into ``[num_hashes * num_buckets]``.

    Hash ``k`` mixes the key with an odd multiplier and xor-shifts (a
    multiplicative hash) and maps its high 32 bits onto ``[0, num_buckets)``
    by a multiply-shift (no modulo bias).

    Args:
      keys: int64 ``[N]`` (from :func:`id_keys`).
      num_hashes, num_buckets: ints (checked).

    Returns:
      tf.Tensor: int32 ``[num_hashes, N]``; row ``k`` lies in
      ``[k * num_buckets, (k + 1) * num_buckets)``.
    """
    x = tf.bitcast(tf.cast(keys, tf.int64), tf.uint64)
    rows = []
    for k in range(num_hashes):
        multiplier = tf.constant(_MULTIPLIERS[k % len(_MULTIPLIERS)], tf.uint64)
        h = x ^ tf.bitwise.right_shift(x, tf.constant(31 + k // len(_MULTIPLIERS), tf.uint64))
        h = h * multiplier
        h = h ^ tf.bitwise.right_shift(h, tf.constant(29, tf.uint64))
        h = h * tf.constant(_MULTIPLIERS[(k + 1) % len(_MULTIPLIERS)], tf.uint64)
        high = tf.bitwise.right_shift(h, tf.constant(32, tf.uint64))
        bucket = tf.bitwise.right_shift(
            high * tf.constant(num_buckets, tf.uint64), tf.constant(32, tf.uint64)
        )
        rows.append(tf.cast(bucket, tf.int32) + k * num_buckets)
    return tf.stack(rows)


def _counts(buckets: tf.Tensor, size) -> tf.Tensor:
    """How often each entry's value occurs in the 1-D int32 ``buckets`` (values in ``[0, size)``).

    A scatter-add into ``size`` zeros: one memset of the arrays' length, no sort
    (XLA's CPU sort is slow), compilable.
    """
    ones = tf.ones(tf.shape(buckets), tf.int32)
    totals = tf.tensor_scatter_nd_add(tf.zeros([size], tf.int32), buckets[:, None], ones)
    return tf.gather(totals, buckets)


def gap_update(
    last_step: tf.Tensor,
    gap: tf.Tensor,
    buckets: tf.Tensor,
    step: tf.Tensor,
    learning_rate: float,
    weight: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """The new ``A``, ``B`` (and debiasing weight) of the buckets arriving at ``step``, per arrival.

    Every arrival of a bucket gets the same new values (the result of the
    paper's sequential rule over all of that bucket's arrivals at this step),
    so scattering them with duplicates is deterministic.

    The optional weight array ``W`` (start 0) follows ``W <- 1 - (1 - alpha)^n
    * (1 - W)``: the total weight the exponential average has given to
    observations, so that ``B / W`` is the average without the pull of the
    zero start (Adam's bias correction; ``B`` itself is the paper's).

    Args:
      last_step: int64 ``[num_hashes * num_buckets]`` array ``A``.
      gap: float ``[num_hashes * num_buckets]`` array ``B``.
      buckets: int32 ``[N]`` flat bucket indices of this step's arrivals.
      step: int64 scalar, the step ``t`` (>= 1).
      learning_rate: ``alpha`` in (0, 1].
      weight: Optional float array ``W`` like ``gap``.

    Returns:
      tuple: int64 ``[N]`` (all ``step``), ``[N]`` new gaps and ``[N]`` new
      weights (None without ``weight``), in ``gap``'s dtype.
    """
    buckets = tf.reshape(buckets, [-1])
    n = tf.cast(_counts(buckets, tf.shape(gap)[0]), gap.dtype)
    a = tf.gather(last_step, buckets)
    b = tf.gather(gap, buckets)
    keep = tf.cast(1.0 - learning_rate, gap.dtype)
    elapsed = tf.cast(tf.cast(step, tf.int64) - a, gap.dtype)
    decay = tf.pow(keep, n)
    new_gap = decay * b + learning_rate * tf.pow(keep, n - 1.0) * elapsed
    new_last = tf.fill(tf.shape(buckets), tf.cast(step, tf.int64))
    new_weight = None
    if weight is not None:
        new_weight = 1.0 - decay * (1.0 - tf.gather(weight, buckets))
    return new_last, new_gap, new_weight


def probability_from_gaps(
    gap: tf.Tensor, buckets: tf.Tensor, weight: tf.Tensor | None = None
) -> tf.Tensor:
    """``1 / max_k G_k(y)`` for each id, ``G_k = B_k[h_k(y)]`` (divided by ``W_k`` when given).

    ``UNSEEN_PROBABILITY`` where that max is 0 (no bucket of the id was seen).

    Args:
      gap: float ``[num_hashes * num_buckets]`` array ``B``.
      buckets: int32 ``[num_hashes, N]`` from :func:`hash_keys`.
      weight: Optional array ``W`` of :func:`gap_update` (bias correction).

    Returns:
      tf.Tensor: ``[N]`` estimated arrivals per step, in ``gap``'s dtype.
    """
    gaps = tf.gather(gap, buckets)
    if weight is not None:
        w = tf.gather(weight, buckets)
        gaps = tf.where(w > 0, gaps / tf.where(w > 0, w, tf.ones_like(w)), gaps)
    largest = tf.reduce_max(gaps, axis=0)
    seen = largest > 0
    return tf.where(
        seen,
        1.0 / tf.where(seen, largest, tf.ones_like(largest)),
        tf.constant(UNSEEN_PROBABILITY, gap.dtype),
    )
