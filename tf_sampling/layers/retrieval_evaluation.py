"""Exact retrieval evaluation over a whole candidate corpus: top-k accuracy for several k at once.

For each (query, positive) pair, the corpus (the candidate tower's embedding
of every candidate, one table) is ranked by dot product with
``tf_sampling.nn.full_top_k`` (exact, in class blocks, ties to the lower
row); the pair is a hit at ``k`` when one of the first ``k`` rows holds the
positive's id. With ``exclude_ids`` (e.g. the query's training positives),
those ids are taken out of the ranking first, so the first ``k`` rows are the
first ``k`` that are not excluded. With one positive per pair this top-k
accuracy is recall@k of the pair.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from tf_sampling import nn

__all__ = ["retrieval_top_k_accuracy"]


def _check_ks(ks, corpus_size: int) -> list[int]:
    if isinstance(ks, numbers.Integral):
        ks = [ks]
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) for k in ks):
        raise TypeError(f"`ks` must be a positive int or a non-empty list of them, got {ks!r}.")
    if min(ks) < 1 or max(ks) > corpus_size:
        raise ValueError(f"`ks` must lie in [1, {corpus_size}] (the corpus size), got {ks!r}.")
    return sorted({int(k) for k in ks})


def _padded(exclude_ids, num_queries: int) -> np.ndarray:
    """A list of id lists (or a padded array with -1) as an int64 [Q, E] array padded with -1."""
    if isinstance(exclude_ids, np.ndarray) and exclude_ids.ndim == 2:
        out = exclude_ids.astype(np.int64)
    else:
        rows = list(exclude_ids)
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), max(width, 1)), -1, np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = np.asarray(row, np.int64)
    if out.shape[0] != num_queries:
        raise ValueError(
            f"`exclude_ids` must have one row per query ({num_queries}), got {out.shape[0]}."
        )
    return out


def retrieval_top_k_accuracy(
    query_embeddings,
    candidate_embeddings,
    positive_ids,
    ks=(1, 5, 10, 50, 100),
    candidate_ids=None,
    exclude_ids=None,
    batch_size: int = 2048,
) -> dict[int, float]:
    """Fraction of (query, positive) pairs whose positive is in the query's top ``k``, for each k.

    Args:
      query_embeddings: float ``[Q, d]``, one row per evaluated pair.
      candidate_embeddings: float ``[N, d]``: the whole corpus.
      positive_ids: int ``[Q]``: each pair's positive id.
      ks: an int or a list of ints in ``[1, N]``.
      candidate_ids: Optional int ``[N]``: the id of each corpus row (rows may
        share an id, e.g. two movies of one title); default ``range(N)``.
      exclude_ids: Optional ids to take out of each query's ranking: a list
        of ``Q`` lists, or an int array ``[Q, E]`` padded with -1.
      batch_size: queries scored per block.

    Returns:
      dict: ``{k: accuracy}`` (Python floats).

    Raises:
      TypeError, ValueError: naming the bad argument.
    """
    queries = np.asarray(query_embeddings, np.float32)
    table = tf.convert_to_tensor(np.asarray(candidate_embeddings, np.float32))
    positives = np.asarray(positive_ids, np.int64).reshape(-1)
    if queries.ndim != 2 or table.shape.rank != 2 or queries.shape[1] != table.shape[1]:
        raise ValueError(
            "`query_embeddings` [Q, d] and `candidate_embeddings` [N, d] must share d, got "
            f"shapes {queries.shape} and {tuple(table.shape)}."
        )
    if positives.shape[0] != queries.shape[0]:
        raise ValueError(
            f"`positive_ids` must have one id per query ({queries.shape[0]}), got "
            f"{positives.shape[0]}."
        )
    corpus = int(table.shape[0])
    ks = _check_ks(ks, corpus)
    ids = np.arange(corpus, dtype=np.int64) if candidate_ids is None else np.asarray(candidate_ids)
    ids = ids.astype(np.int64).reshape(-1)
    if ids.min() < 0:
        raise ValueError(f"`candidate_ids` must be >= 0 (-1 pads `exclude_ids`), got {ids.min()}.")
    if ids.shape[0] != corpus:
        raise ValueError(
            f"`candidate_ids` must have one id per corpus row ({corpus}), got {ids.shape[0]}."
        )
    exclude = None if exclude_ids is None else _padded(exclude_ids, queries.shape[0])
    # Excluded ids take at most their rows out of the ranking: fetch that many more.
    depth = max(ks)
    if exclude is not None:
        rows_per_id = int(np.unique(ids, return_counts=True)[1].max())
        depth += int((exclude >= 0).sum(1).max(initial=0)) * rows_per_id
    depth = min(corpus, depth)
    num_ids = int(ids.max()) + 1
    ids_t = tf.constant(ids)
    biases = tf.zeros([corpus], tf.float32)
    hits = {k: 0 for k in ks}
    for start in range(0, queries.shape[0], batch_size):
        block = tf.constant(queries[start : start + batch_size])
        _, rows = nn.full_top_k(table, biases, block, depth)
        ranked = tf.gather(ids_t, rows).numpy()  # [b, depth] ids in rank order
        keep = np.ones_like(ranked, bool)
        if exclude is not None:
            ex = exclude[start : start + batch_size]
            # A [b, num_ids + 1] mark of each query's excluded ids (-1 pads to the last column).
            marked = np.zeros((len(ex), num_ids + 1), bool)
            ex = np.where((ex >= 0) & (ex < num_ids), ex, num_ids)
            marked[np.arange(len(ex))[:, None], ex] = True
            keep = ~marked[np.arange(len(ex))[:, None], ranked]
        rank = np.cumsum(keep, axis=1)  # 1-based rank among kept rows
        match = keep & (ranked == positives[start : start + batch_size, None])
        first = np.where(match, rank, depth + 1).min(1)
        for k in ks:
            hits[k] += int((first <= k).sum())
    return {k: hits[k] / max(queries.shape[0], 1) for k in ks}
