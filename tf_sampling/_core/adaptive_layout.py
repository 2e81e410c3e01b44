"""The cluster layout of an adaptive softmax: its checks and the rule that picks cutoffs.

Class ids are assumed sorted by decreasing frequency. ``cutoffs = [c_0, ...,
c_{m-1}]`` split ``[0, num_classes)`` into the head's shortlist ``[0, c_0)``
and ``m`` tail clusters ``[c_0, c_1), ..., [c_{m-1}, num_classes)``. The head
scores the shortlist and one logit per tail cluster (``c_0 + m`` rows); tail
cluster ``i`` projects the input to ``floor(dim / div_value**(i + 1))`` units
before scoring its classes (Grave et al. 2017, arXiv 1609.04309).

``cutoffs=None`` is the layout without tail clusters: the head is the plain
full softmax over all classes. An empty sequence is refused rather than read
as None (it is usually a frequency rule that found no split).
"""

from __future__ import annotations

import numbers

import numpy as np

#: Default cumulative-frequency fractions of :func:`cutoffs_from_counts`: the
#: head covers 80% of the occurrences, the tail clusters the next 10%, 5% and 5%.
DEFAULT_MASS = (0.8, 0.9, 0.95)


def check_cutoffs(cutoffs, num_classes: int) -> tuple[int, ...]:
    """Returns ``cutoffs`` as a tuple of ints after checking them against ``num_classes``.

    Args:
      cutoffs: None (no tail cluster) or a non-empty sequence of Python/NumPy
        ints, strictly increasing, each in ``[1, num_classes - 1]``.
      num_classes: int, the number of classes (already checked).

    Returns:
      tuple[int, ...]: the cutoffs (empty for None).

    Raises:
      TypeError: ``cutoffs`` is not a sequence, or holds a non-integer.
      ValueError: empty, unsorted, duplicated or out of range.
    """
    if cutoffs is None:
        return ()
    if isinstance(cutoffs, str | bytes) or not isinstance(cutoffs, list | tuple | np.ndarray):
        raise TypeError(
            "`cutoffs` must be None or a list of ints, got "
            f"{cutoffs!r} of type {type(cutoffs).__name__}."
        )
    values = list(np.asarray(cutoffs).ravel()) if isinstance(cutoffs, np.ndarray) else cutoffs
    if not values:
        raise ValueError(
            "`cutoffs` must hold at least one class id, got cutoffs=[]. Pass cutoffs=None for "
            "a single cluster (the plain full softmax)."
        )
    for value in values:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"`cutoffs` must hold ints, got {value!r} of type {type(value).__name__} in "
                f"cutoffs={list(values)!r}."
            )
    values = [int(v) for v in values]
    for a, b in zip(values, values[1:], strict=False):
        if a == b:
            raise ValueError(
                f"`cutoffs` must not repeat a value, got {a} twice in cutoffs={values}."
            )
        if a > b:
            raise ValueError(f"`cutoffs` must be sorted in increasing order, got cutoffs={values}.")
    if values[0] < 1 or values[-1] >= num_classes:
        raise ValueError(
            f"`cutoffs` must lie in [1, num_classes - 1] = [1, {num_classes - 1}] (every cluster "
            f"holds a class), got cutoffs={values} with num_classes={num_classes}."
        )
    return tuple(values)


def cluster_bounds(cutoffs: tuple[int, ...], num_classes: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the tail clusters (empty without cutoffs)."""
    edges = list(cutoffs) + [num_classes]
    return list(zip(edges[:-1], edges[1:], strict=True))


def head_size(cutoffs: tuple[int, ...], num_classes: int) -> int:
    """Rows of the head: the shortlist and one per tail cluster (``num_classes`` without cutoffs)."""
    return cutoffs[0] + len(cutoffs) if cutoffs else num_classes


def check_div_value(div_value) -> float:
    """Returns ``div_value`` as a float after checking it is a finite real > 0.

    Raises:
      TypeError: not a real number (bools rejected).
      ValueError: not finite or <= 0.
    """
    if isinstance(div_value, bool | np.bool_) or not isinstance(div_value, numbers.Real):
        raise TypeError(
            f"`div_value` must be a float > 0, got {div_value!r} of type "
            f"{type(div_value).__name__}."
        )
    if not np.isfinite(div_value) or div_value <= 0:
        raise ValueError(f"`div_value` must be a finite float > 0, got div_value={div_value!r}.")
    return float(div_value)


def projection_sizes(dim: int, num_clusters: int, div_value: float) -> list[int]:
    """Units of each tail cluster's projection: ``floor(dim / div_value**(i + 1))``.

    Args:
      dim: int, width of the inputs.
      num_clusters: int, number of tail clusters.
      div_value: float > 0 (checked).

    Returns:
      list[int]: one size per tail cluster.

    Raises:
      ValueError: a cluster would get no unit.
    """
    sizes = [int(dim // (div_value ** (i + 1))) for i in range(num_clusters)]
    for i, size in enumerate(sizes):
        if size < 1:
            raise ValueError(
                f"Tail cluster {i} would project dim={dim} to floor({dim} / {div_value}**{i + 1}) "
                f"= 0 units: use a smaller `div_value` (got div_value={div_value}), fewer "
                "`cutoffs` or wider inputs."
            )
    return sizes


def cutoffs_from_counts(counts, mass=DEFAULT_MASS) -> list[int] | None:
    """Cutoffs from class frequencies: where the cumulative frequency reaches each ``mass``.

    The rule: with classes sorted by decreasing count, cutoff ``j`` is the
    number of most frequent classes whose counts add up to at least
    ``mass[j]`` of the total. With the default ``(0.8, 0.9, 0.95)`` the head's
    shortlist covers 80% of the occurrences and three tail clusters the next
    10%, 5% and the rarest 5% (the 4-cluster layout of Grave et al.: a small,
    busy head and ever larger, ever rarer tails). Cutoffs that coincide, or
    that would leave a cluster empty, are dropped.

    Args:
      counts: 1-D array-like of ``num_classes`` non-negative counts in class-id
        order, non-increasing (class 0 the most frequent), with a positive sum.
      mass: increasing fractions in ``(0, 1)``.

    Returns:
      list[int] | None: the cutoffs for ``AdaptiveSoftmax``/the functional
      form, or None when no split remains (a single cluster: the full softmax).

    Raises:
      ValueError: ``counts`` is not 1-D with at least 2 classes, has a
        negative, non-finite or all-zero count, or is not sorted by decreasing
        count (renumber the classes first: ``order = np.argsort(-counts,
        kind="stable")`` gives the new class ``j`` the old id ``order[j]``);
        ``mass`` is not increasing in ``(0, 1)``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(
            f"`counts` must be 1-D with one count per class (>= 2), got shape {counts.shape}."
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError("`counts` must be finite, non-negative and not all zero.")
    rises = np.flatnonzero(np.diff(counts) > 0)
    if rises.size:
        i = int(rises[0])
        raise ValueError(
            "`counts` must be sorted by decreasing count (class 0 the most frequent), got "
            f"counts[{i}]={counts[i]:g} < counts[{i + 1}]={counts[i + 1]:g}. Renumber the "
            'classes first: order = np.argsort(-counts, kind="stable") gives new class j the '
            "old id order[j]."
        )
    fractions = np.asarray(mass, dtype=np.float64).ravel()
    if (
        fractions.size == 0
        or np.any(fractions <= 0)
        or np.any(fractions >= 1)
        or np.any(np.diff(fractions) <= 0)
    ):
        raise ValueError(f"`mass` must be increasing fractions in (0, 1), got mass={mass!r}.")
    covered = np.cumsum(counts) / counts.sum()
    # The number of classes needed to reach each fraction (a small slack for
    # rounding in the cumulative sum).
    cuts = np.searchsorted(covered, fractions - 1e-12, side="left") + 1
    cuts = sorted({int(c) for c in cuts if 1 <= c <= counts.size - 1})
    return cuts or None
