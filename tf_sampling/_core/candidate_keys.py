"""From candidate ids (int64 or string) to their rows in a candidate table.

Excluding ids from a scan needs the rows that hold them. The table's ids are
reduced to int64 keys (the id itself, or a 64-bit hash of a string id) and
sorted once when the table is built; an exclusion list is then found with two
binary searches per id. The sorted keys and their rows cost 12 bytes per
candidate, whatever the id type.

Exact, whatever the keys: every row of a run of equal keys is checked, and
for string ids the id itself is compared, so a hash collision neither
excludes another candidate nor misses one; an id held by several rows is
excluded from all of them. Ids that are not in the table exclude nothing.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# 64-bit hashes of string ids, kept non-negative.
_HASH_BUCKETS = 2**63 - 1


def id_keys(ids: tf.Tensor) -> tf.Tensor:
    """int64 sort keys of ``ids`` (any shape): integer ids themselves, or hashes of strings."""
    if ids.dtype == tf.string:
        return tf.strings.to_hash_bucket_fast(ids, _HASH_BUCKETS)
    return tf.cast(ids, tf.int64)


def sorted_keys(ids: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The table's keys in ascending order and the row of each (run eagerly, once per build).

    Args:
      ids: int64 or string ``[rows]``, fewer than 2^31.

    Returns:
      tuple: int64 ``[rows]`` sorted keys and int32 ``[rows]`` rows; equal
      keys keep their row order.
    """
    keys = np.array(id_keys(ids))  # a copy of our own, sorted in place below
    rows = np.argsort(keys, kind="stable").astype(np.int32)
    keys.sort(kind="stable")
    return keys, rows


def excluded_pairs(
    exclude: tf.Tensor | tf.RaggedTensor,
    padding,
    ids: tf.Tensor,
    keys: tf.Tensor,
    rows: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The (query, table row) pairs that ``exclude`` names, sorted by row.

    Args:
      exclude: ``[q, e]`` ids padded with ``padding``, or a ``tf.RaggedTensor``
        ``[q, (e_i)]``; same kind of ids as ``ids`` (integers or strings).
      padding: the padding id of a dense ``exclude`` (ignored when ragged).
      ids: the table's ids ``[rows]``, int64 or string.
      keys: int64 ``[rows]``, :func:`sorted_keys`' keys.
      rows: int32 ``[rows]``, :func:`sorted_keys`' rows.

    Returns:
      tuple: ``(query_rows, positions)``: int32 and int64 ``[p]``, sorted by
      position, as :func:`tf_sampling._core.block_top_k.block_top_k` takes them.
    """
    if isinstance(exclude, tf.RaggedTensor):
        if exclude.ragged_rank != 1 or exclude.flat_values.shape.rank != 1:
            raise ValueError(
                f"`exclude` must be a tf.RaggedTensor [queries, (ids)], got shape {exclude.shape}."
            )
        values = exclude.flat_values
        query_rows = tf.cast(exclude.value_rowids(), tf.int32)
    else:
        kept = tf.not_equal(exclude, tf.cast(padding, exclude.dtype))
        values = tf.boolean_mask(exclude, kept)
        query_rows = tf.cast(tf.where(kept)[:, 0], tf.int32)
    if ids.dtype != tf.string:
        values = tf.cast(values, tf.int64)
    wanted = id_keys(values)
    lo = tf.searchsorted(keys, wanted, side="left", out_type=tf.int64)
    hi = tf.searchsorted(keys, wanted, side="right", out_type=tf.int64)
    counts = hi - lo
    # Every row whose key equals an excluded id's key.
    candidates = tf.ragged.range(lo, hi).flat_values
    positions = tf.cast(tf.gather(rows, candidates), tf.int64)
    query_rows = tf.repeat(query_rows, counts)
    if ids.dtype == tf.string:
        same = tf.equal(tf.gather(ids, positions), tf.repeat(values, counts))
        positions = tf.boolean_mask(positions, same)
        query_rows = tf.boolean_mask(query_rows, same)
    order = tf.argsort(positions, stable=True)
    return tf.gather(query_rows, order), tf.gather(positions, order)
