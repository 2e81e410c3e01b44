"""Exact top-k of ``queries @ table^T`` over row blocks of the table, in bounded memory.

:func:`tf_sampling.nn.full_top_k` scans an output layer's class table (with
biases and shards, a row count known when the graph is built). Retrieval
scans a candidate table whose row count is only known when it runs: an
index can be rebuilt with more or fewer candidates under the same traced
function. :func:`block_top_k` is that scan:

* a ``tf.while_loop`` over blocks of ``chunk_size`` rows, the last one
  shorter, that keeps a running ``[queries, k]`` best list: each block's own
  top ``k`` is merged into it (the running list first, so equal scores keep
  the lower row, as ``tf.math.top_k`` breaks ties on a full row);
* the running list starts as ``k`` empty slots (score ``-inf``, position
  -1): with fewer than ``k`` rows left after exclusions the empty slots stay
  at the end, and excluded rows (also ``-inf``) never displace them;
* reduced-precision tables (bfloat16, float16) are cast to float32 a block
  at a time, so products and sums are float32 while the table stays small;
* excluded (query, row) pairs are given sorted by row, so each block finds
  its own with two binary searches.

The largest temporaries are a block of scores ``[queries, chunk_size]`` (one
per iteration in flight) and, for reduced-precision storage, a float32 copy
of a block of rows ``[chunk_size, dim]``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_sampling._core.xla import in_xla_context

# The automatic block size keeps a block of scores [queries, chunk] within this
# many elements (128 MB in float32; larger blocks pay the per-row cost of
# top_k less often, see docs/candidate_index.md) ...
SCORES_BLOCK_ELEMENTS = 2**25
# ... a float32 copy of a reduced-precision block of rows [chunk, dim] within
# this many (4 MB: it stays in cache between the cast and the product) ...
CAST_BLOCK_ELEMENTS = 2**20
# ... and a float32 block of rows (a view of the table, not a copy) within this
# many (128 MB), so that one query still runs several blocks.
ROWS_BLOCK_ELEMENTS = 2**25
# Block sizes are multiples of this, and never below it.
BLOCK_ALIGN = 128
# Query count assumed when it is unknown when the graph is built.
ASSUMED_QUERIES = 1024
STORAGE_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


def auto_chunk_size(num_queries: int | None, dim: int, storage_dtype: tf.DType) -> int:
    """The rows per block used when ``chunk_size`` is None.

    The largest multiple of 128 that keeps a block of scores ``[num_queries,
    chunk]`` within 2^25 elements and a block of rows ``[chunk, dim]`` within
    2^25 elements (2^20 when the table is stored in reduced precision: that
    block is cast to a float32 copy), and at least 128.

    Args:
      num_queries: int or None (counted as 1024), the queries per call.
      dim: int, the width of the table.
      storage_dtype: the table's dtype.

    Returns:
      int: rows per block.
    """
    rows = max(int(num_queries or ASSUMED_QUERIES), 1)
    limit = ROWS_BLOCK_ELEMENTS if storage_dtype == tf.float32 else CAST_BLOCK_ELEMENTS
    chunk = min(SCORES_BLOCK_ELEMENTS // rows, limit // max(int(dim), 1))
    return max(BLOCK_ALIGN, chunk // BLOCK_ALIGN * BLOCK_ALIGN)


def group_size(chunk_size: int, k: int) -> int:
    """Columns per group of :func:`_block_candidates`: the power of two at most ``sqrt(chunk / k)``.

    It balances a block's two ``top_k`` passes, over its ``chunk / group``
    group maxima and over the ``k * group`` scores of the best groups.
    """
    group = 1
    while (2 * group) ** 2 * k <= chunk_size:
        group *= 2
    return group


def auto_parallel_iterations(num_queries: int | None, chunk_size: int) -> int:
    """Blocks in flight when not given: 2 if two blocks of scores fit in 2^25 elements, else 1.

    A few queries leave a core idle in each block's product and ``top_k``;
    a second block in flight keeps it busy, for the memory of its scores.
    """
    if num_queries is not None and 2 * num_queries * chunk_size <= SCORES_BLOCK_ELEMENTS:
        return 2
    return 1


def _block_candidates(scores, k: int, group: int):
    """The columns of each row of ``[q, columns]`` that can hold its top ``k``, in column order.

    ``tf.math.top_k`` costs a few nanoseconds per score, as much as the
    product that made it, and about as much again per row for its heap and
    sorted output. So it runs once per block, on the running best list and
    these candidates: with ``group == 1`` every column; otherwise the
    columns of the ``k`` groups of ``group`` adjacent columns with the best
    maxima, which hold every score of the row's top ``k`` (a group holding
    none of them has a maximum no better than the ``k``-th score; on equal
    maxima the lower group is chosen, as the lower column would be). The
    groups are gathered in column order, so equal scores keep going to the
    lower column. A last group cut short is padded with -inf, which never
    enters the running list (its -inf slots come first).

    Returns:
      tuple: float32 ``[q, m]`` scores and int64 ``[q, m]`` (or ``[m]``) columns.
    """
    columns = tf.shape(scores, out_type=tf.int64)[1]
    if group == 1:
        return scores, tf.range(columns)
    q = tf.shape(scores, out_type=tf.int64)[0]
    short = (-columns) % group
    scores = tf.cond(
        short > 0,
        lambda: tf.pad(scores, tf.stack([[0, 0], [0, short]]), constant_values=float("-inf")),
        lambda: scores,  # tf.pad copies even when it pads nothing
    )
    grouped = tf.reshape(scores, tf.stack([q, -1, group]))
    num_groups = tf.shape(grouped)[1]
    maxima = tf.reduce_max(grouped, 2)
    _, best = tf.math.top_k(maxima, tf.minimum(num_groups, k), sorted=False)
    best = tf.cast(tf.sort(best, axis=1), tf.int64)
    picked = tf.reshape(tf.gather(grouped, best, batch_dims=1), tf.stack([q, -1]))
    cols = tf.reshape(best[:, :, tf.newaxis] * group + tf.range(group, dtype=tf.int64), [q, -1])
    return picked, cols


def _mask_excluded(scores, excluded, start, size):
    """``scores`` ``[q, size]`` with the excluded pairs of rows ``[start, start + size)`` at -inf."""
    rows, positions = excluded
    bounds = tf.searchsorted(positions, tf.stack([start, start + size]), side="left")
    lo, hi = bounds[0], bounds[1]
    cols = positions[lo:hi] - start
    index = tf.stack([tf.cast(rows[lo:hi], tf.int64), cols], 1)
    fill = tf.fill(tf.shape(cols), tf.constant(-np.inf, scores.dtype))
    return tf.tensor_scatter_nd_update(scores, index, fill)


def block_top_k(
    queries: tf.Tensor,
    table: tf.Tensor,
    k: int,
    chunk_size: int,
    excluded: tuple[tf.Tensor, tf.Tensor] | None = None,
    parallel_iterations: int = 1,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The ``k`` best rows of ``table`` for each query, by dot product, in row blocks.

    Equal to ``tf.math.top_k(queries @ table^T, k)`` (ties to the lower row)
    without the ``[queries, rows]`` matrix. The row count may be dynamic.

    Args:
      queries: float32 ``[q, dim]``.
      table: float32, bfloat16 or float16 ``[rows, dim]`` (a tensor: read a
        variable first; a variable read this way is not copied).
      k: int >= 1, static. With fewer than ``k`` rows left, the last slots
        are empty.
      chunk_size: int >= 1, rows per block.
      excluded: Optional ``(query_rows, positions)``, int32 and int64 ``[p]``
        sorted by position: those (query, row) pairs are left out.
      parallel_iterations: int, blocks in flight (each holds its scores).

    Returns:
      tuple: ``(scores, positions)``, ``[q, k]`` each, best first: float32
      scores (-inf in empty slots) and int64 rows (-1 in empty slots).

    Raises:
      ValueError: under XLA (the blocks have dynamic sizes).
    """
    if in_xla_context():
        raise ValueError(
            "block_top_k cannot run under XLA (jit_compile=True): its blocks have sizes known "
            "only at run time. Run it outside the compiled function, or compile with "
            "jit_compile=False."
        )
    chunk = tf.constant(chunk_size, tf.int64)
    rows = tf.shape(table, out_type=tf.int64)[0]
    num_blocks = (rows + chunk - 1) // chunk
    q = tf.shape(queries)[0]
    group = group_size(chunk_size, k)

    def body(block, best_scores, best_positions):
        start = block * chunk
        size = tf.minimum(chunk, rows - start)
        rows_block = tf.slice(table, tf.stack([start, 0]), tf.stack([size, -1]))
        if rows_block.dtype != tf.float32:
            rows_block = tf.cast(rows_block, tf.float32)
        scores = tf.matmul(queries, rows_block, transpose_b=True)
        if excluded is not None:
            scores = _mask_excluded(scores, excluded, start, size)
        candidates, cols = _block_candidates(scores, k, group)
        positions = tf.broadcast_to(cols + start, tf.shape(candidates, out_type=tf.int64))
        # Running list first: on equal scores top_k keeps it (lower rows).
        merged = tf.concat([best_scores, candidates], 1)
        merged_positions = tf.concat([best_positions, positions], 1)
        best, picks = tf.math.top_k(merged, k)
        return block + 1, best, tf.gather(merged_positions, picks, batch_dims=1)

    _, scores, positions = tf.while_loop(
        lambda block, *_: block < num_blocks,
        body,
        (
            tf.constant(0, tf.int64),
            tf.fill(tf.stack([q, k]), tf.constant(-np.inf, tf.float32)),
            tf.fill(tf.stack([q, k]), tf.constant(-1, tf.int64)),
        ),
        parallel_iterations=parallel_iterations,
    )
    return scores, positions
