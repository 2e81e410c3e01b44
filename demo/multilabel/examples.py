"""MovieLens ratings -> multi-label examples: a user's recent liked movies -> the next group.

The steps (all NumPy, deterministic):

1. A rating ``>= min_rating`` marks a *liked* movie; only those are used.
2. A global time cut: ``cutoff`` is the ``1 - test_fraction`` quantile of the
   liked ratings' timestamps. Ratings at or after it are the test period.
3. Each user's liked ratings, in time order (ties by movie row), fall into
   *bursts*: a new burst starts at a gap of more than ``gap`` seconds, and at
   the cut (so no burst straddles it). A burst longer than ``max_true`` is
   split into ``ceil(size / max_true)`` consecutive pieces of near-equal size.
   Each piece is one example's label set: ``n_i`` in ``[1, max_true]``.
4. The example's input is the user's last ``history`` liked movies before the
   piece (in the same order); a piece with none (a user's first) is dropped.
5. Pieces before the cut are training examples, the rest test examples. So
   every training label was rated before every test label (no test-period
   movie is a training label), and a test input may hold test-period movies
   rated earlier by the same user (known at prediction time).
"""

from __future__ import annotations

import dataclasses

import numpy as np

PADDING_ID = -1


@dataclasses.dataclass
class Examples:
    """One side of the split.

    ``history`` int32 ``[n, history]``: movie row + 1 of the input movies,
    oldest first, 0 in the unused slots (the embedding's mask id);
    ``labels`` int64 ``[n, max_true]``: movie rows, :data:`PADDING_ID` in the
    unused slots; ``user`` int64 ``[n]``; ``time`` int64 ``[n]``: the first
    label's timestamp.
    """

    history: np.ndarray
    labels: np.ndarray
    user: np.ndarray
    time: np.ndarray

    @property
    def num_true(self) -> np.ndarray:
        """int ``[n]``: the real labels of each example."""
        return np.sum(self.labels != PADDING_ID, axis=1)


@dataclasses.dataclass
class Split:
    train: Examples
    test: Examples
    cutoff: int
    num_movies: int


def bursts(user: np.ndarray, time: np.ndarray, gap: int, cutoff: int) -> np.ndarray:
    """Start positions of the bursts of ratings already sorted by (user, time).

    Returns int ``[num_bursts]``: a position starts a burst when it is the
    user's first rating, follows the previous one by more than ``gap``
    seconds, or is the first at or after ``cutoff``.
    """
    new = np.ones(len(user), bool)
    new[1:] = (
        (user[1:] != user[:-1])
        | (time[1:] - time[:-1] > gap)
        | ((time[:-1] < cutoff) & (time[1:] >= cutoff))
    )
    return np.flatnonzero(new)


def pieces(size: int, max_true: int) -> list[tuple[int, int]]:
    """``(begin, end)`` of the near-equal pieces of a burst of ``size`` (each <= ``max_true``)."""
    count = -(-size // max_true)
    bounds = [size * j // count for j in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def build(
    user: np.ndarray,
    movie: np.ndarray,
    rating: np.ndarray,
    timestamp: np.ndarray,
    num_movies: int,
    min_rating: float = 4.0,
    gap: int = 60,
    max_true: int = 8,
    history: int = 32,
    test_fraction: float = 0.2,
) -> Split:
    """The examples of the module docstring.

    Args:
      user, movie, rating, timestamp: ``[num_ratings]`` arrays (user and movie
        rows, score, Unix seconds), in any order.
      num_movies: int, the number of classes (movie rows are in ``[0,
        num_movies)``).
      min_rating: a rating >= this marks a liked movie.
      gap: seconds; a longer pause starts a new burst.
      max_true: int, the most labels of an example (the head's ``num_true``).
      history: int, the most input movies of an example.
      test_fraction: float in (0, 1), the share of liked ratings in the test
        period.

    Returns:
      Split.
    """
    for name, value in (("max_true", max_true), ("history", history), ("gap", gap)):
        if not isinstance(value, int | np.integer) or value < (0 if name == "gap" else 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    liked = np.asarray(rating) >= min_rating
    user = np.asarray(user, np.int64)[liked]
    movie = np.asarray(movie, np.int64)[liked]
    time = np.asarray(timestamp, np.int64)[liked]
    if len(user) == 0:
        raise ValueError(f"no rating >= min_rating={min_rating}.")
    if movie.min() < 0 or movie.max() >= num_movies:
        raise ValueError(f"movie rows must be in [0, num_movies={num_movies}).")
    order = np.lexsort((movie, time, user))
    user, movie, time = user[order], movie[order], time[order]
    cutoff = int(np.quantile(time, 1.0 - test_fraction, method="lower"))
    starts = bursts(user, time, gap, cutoff)
    ends = np.append(starts[1:], len(user))
    user_first = np.searchsorted(user, user, side="left")  # a user's first position
    sides = {False: [], True: []}
    for start, end in zip(starts, ends, strict=True):
        for begin, stop in pieces(int(end - start), max_true):
            first = start + begin
            seen = movie[max(user_first[first], first - history) : first]
            if len(seen) == 0:
                continue
            labels = np.full(max_true, PADDING_ID, np.int64)
            labels[: stop - begin] = movie[first : start + stop]
            inputs = np.zeros(history, np.int32)
            inputs[: len(seen)] = seen + 1
            sides[bool(time[first] >= cutoff)].append((inputs, labels, user[first], time[first]))

    def stack(rows) -> Examples:
        if not rows:
            return Examples(
                np.zeros([0, history], np.int32),
                np.zeros([0, max_true], np.int64),
                np.zeros([0], np.int64),
                np.zeros([0], np.int64),
            )
        columns = list(zip(*rows, strict=True))
        return Examples(*(np.stack(c) for c in columns))

    return Split(stack(sides[False]), stack(sides[True]), cutoff, num_movies)


def repeat_first(labels: np.ndarray) -> np.ndarray:
    """The common workaround: every padded slot holds the row's first label (fixed ``num_true``)."""
    labels = np.array(labels, np.int64)
    padded = labels == PADDING_ID
    labels[padded] = np.broadcast_to(labels[:, :1], labels.shape)[padded]
    return labels
