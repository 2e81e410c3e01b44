"""Row lookups in a possibly sharded ``[num_classes, ...]`` table.

A table is one of:

* a tensor, ``tf.Variable`` or ``keras.Variable``;
* a Python list/tuple of shards, or a TF1 ``PartitionedVariable``: class ids
  map to shards by ``partition_strategy`` exactly as
  ``tf.compat.v1.nn.embedding_lookup`` does (``"mod"``: class ``i`` is row
  ``i // n`` of shard ``i % n``; ``"div"``: shards hold consecutive ranges);
* a TF2 ``ShardedVariable``: one logical table whose row ``i`` is class ``i``,
  shards holding consecutive ranges, whatever ``partition_strategy`` says
  (TF's own v1 lookup disagrees between eager and graph mode here).

Every lookup is a gather per shard, so gradients reach the variables as
``tf.IndexedSlices`` and no shard is ever concatenated.

The shard layout, worked through for 10 classes in 3 shards
(:func:`shard_class_ids` is the one place that encodes it)::

    partition_strategy="div"  shard 0: classes [0, 1, 2, 3]   (rows 0..3)
                              shard 1: classes [4, 5, 6]      (rows 0..2)
                              shard 2: classes [7, 8, 9]      (rows 0..2)
    partition_strategy="mod"  shard 0: classes [0, 3, 6, 9]   (class c is row c // 3
                              shard 1: classes [1, 4, 7]       of shard c % 3)
                              shard 2: classes [2, 5, 8]

Both give the first ``10 % 3`` shards one row more. A ``"div"`` table may also
have shards of any sizes (a ``ShardedVariable``): shard ``k`` then holds the
next ``sizes[k]`` classes.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core import loss_args

_ShardedVariable = getattr(tf.__internal__.distribute, "ShardedVariable", ())


def shard_sizes(num_rows: int, num_shards: int) -> tuple[int, ...]:
    """Rows of each shard when ``num_rows`` classes are split into ``num_shards``.

    The same under both strategies: the first ``num_rows % num_shards`` shards
    hold one row more (see the module docstring).

    Args:
      num_rows: int, number of classes.
      num_shards: int >= 1.

    Returns:
      tuple[int, ...]: ``num_shards`` sizes summing to ``num_rows``.
    """
    base, extra = divmod(num_rows, num_shards)
    return tuple(base + (1 if k < extra else 0) for k in range(num_shards))


def shard_class_ids(num_rows: int, num_shards: int, partition_strategy: str) -> list[np.ndarray]:
    """Class ids held by each shard, in row order (``tf.nn.embedding_lookup``'s rule).

    Args:
      num_rows: int, number of classes.
      num_shards: int >= 1.
      partition_strategy: ``"div"`` (consecutive ranges) or ``"mod"`` (class
        ``c`` is row ``c // num_shards`` of shard ``c % num_shards``); see the
        worked example in the module docstring.

    Returns:
      list[np.ndarray]: ``num_shards`` int64 arrays; entry ``j`` of array ``k``
      is the class stored in row ``j`` of shard ``k``.
    """
    loss_args.check_partition_strategy(partition_strategy)
    if partition_strategy == "mod":
        return [np.arange(k, num_rows, num_shards, dtype=np.int64) for k in range(num_shards)]
    sizes = shard_sizes(num_rows, num_shards)
    starts = np.cumsum((0, *sizes[:-1]))
    return [np.arange(a, a + n, dtype=np.int64) for a, n in zip(starts, sizes, strict=True)]


def _unwrap(shard):
    # A keras.Variable's `.value` is its tf.Variable (or, under an autocast
    # scope, a cast copy: create class weights with autocast=False so a lookup
    # never casts the whole table).
    if isinstance(shard, keras.Variable):
        return shard.value
    return shard


def _is_partitioned_variable(params) -> bool:
    return type(params).__name__ == "PartitionedVariable" and hasattr(params, "_get_variable_list")


@dataclasses.dataclass(frozen=True)
class ShardedTable:
    """A table's shards and how class ids map onto them.

    Attributes:
      shards: The shards, each ``[rows_k, ...]``.
      contiguous: True when shards hold consecutive class ranges (``"div"`` or a
        ``ShardedVariable``), False for ``"mod"``.
    """

    shards: tuple
    contiguous: bool

    @property
    def sizes(self) -> tuple[int, ...]:
        """Static number of rows of each shard."""
        return tuple(int(s.shape[0]) for s in self.shards)

    @property
    def num_rows(self) -> int:
        """Total number of rows (classes)."""
        return sum(self.sizes)

    @property
    def row_shape(self) -> tf.TensorShape:
        """Shape of one row (``[dim]`` for weights, ``[]`` for biases)."""
        return tf.TensorShape(self.shards[0].shape[1:])

    @property
    def dtype(self) -> tf.DType:
        """The shards' dtype."""
        return tf.as_dtype(self.shards[0].dtype)

    def class_order(self) -> np.ndarray | None:
        """Position of each class in the concatenation of the shards.

        Returns:
          ``np.ndarray`` int64 ``[num_rows]`` where entry ``i`` is the row of the
          concatenated shards holding class ``i``, or None when that is the
          identity (contiguous shards).
        """
        if self.contiguous or len(self.shards) == 1:
            return None
        classes_in_row_order = np.concatenate(
            shard_class_ids(self.num_rows, len(self.shards), "mod")
        )
        order = np.empty_like(classes_in_row_order)
        order[classes_in_row_order] = np.arange(self.num_rows)
        return order

    def gather(self, ids: tf.Tensor) -> tf.Tensor:
        """Rows of the logical table for ``ids``.

        Args:
          ids: int64 ``[n]`` class ids in ``[0, num_rows)``.

        Returns:
          tf.Tensor: ``[n, ...row_shape]`` in the table's dtype.
        """
        if len(self.shards) == 1:
            return tf.gather(self.shards[0], ids)
        n = len(self.shards)
        if self.contiguous:
            bounds = np.cumsum(self.sizes)
            shard_index = tf.searchsorted(
                tf.constant(bounds[:-1], tf.int64), ids, side="right", out_type=tf.int32
            )
            starts = tf.constant(np.concatenate([[0], bounds[:-1]]), tf.int64)
            local = ids - tf.gather(starts, shard_index)
        else:
            shard_index = tf.cast(ids % n, tf.int32)
            local = ids // n
        local_parts = tf.dynamic_partition(local, shard_index, n)
        positions = tf.dynamic_partition(tf.range(tf.size(ids)), shard_index, n)
        rows = [
            tf.gather(shard, part) for shard, part in zip(self.shards, local_parts, strict=True)
        ]
        return tf.dynamic_stitch(positions, rows)


def as_sharded_table(params, partition_strategy: str, arg_name: str = "weights") -> ShardedTable:
    """Wraps ``params`` (any supported table form) as a :class:`ShardedTable`.

    Args:
      params: Tensor, variable, list of shards, ``PartitionedVariable`` or
        ``ShardedVariable``.
      partition_strategy: ``"mod"`` or ``"div"``.
      arg_name: The argument's name for error messages.

    Returns:
      ShardedTable: the shards with static row counts checked against the
      strategy's layout.

    Raises:
      ValueError: a shard has unknown or inconsistent shape, or the shard sizes
        cannot come from a ``"mod"`` split.
    """
    loss_args.check_partition_strategy(partition_strategy)
    contiguous = partition_strategy == "div"
    if isinstance(params, _ShardedVariable):
        shards, contiguous = list(params.variables), True
    elif _is_partitioned_variable(params):
        shards = list(params)
    elif isinstance(params, (list, tuple)):
        shards = list(params)
    else:
        shards = [params]
    if not shards:
        raise ValueError(
            f"`{arg_name}` must hold at least one shard, got an empty {type(params).__name__}."
        )
    shards = [
        _unwrap(s) if isinstance(s, (tf.Variable, keras.Variable)) else tf.convert_to_tensor(s)
        for s in shards
    ]
    for k, shard in enumerate(shards):
        if shard.shape.rank is None or shard.shape.rank < 1 or shard.shape[0] is None:
            raise ValueError(
                f"`{arg_name}` shard {k} must have a static first dimension, got shape {shard.shape}."
            )
        if shard.shape[1:] != shards[0].shape[1:] or shard.dtype != shards[0].dtype:
            raise ValueError(
                f"`{arg_name}` shards must agree in row shape and dtype: shard 0 is "
                f"{shards[0].shape}/{shards[0].dtype.name}, shard {k} is {shard.shape}/{shard.dtype.name}."
            )
    table = ShardedTable(tuple(shards), contiguous)
    n = len(shards)
    if not contiguous and n > 1:
        total = table.num_rows
        expected = shard_sizes(total, n)
        if table.sizes != expected:
            raise ValueError(
                f'`{arg_name}` shard sizes {list(table.sizes)} do not fit partition_strategy="mod" '
                f'over {total} rows (expected {list(expected)}); use "div" for shards of '
                "consecutive class ranges."
            )
    return table


def gather_rows(params, ids, partition_strategy: str = "mod", name: str | None = None) -> tf.Tensor:
    """Looks up rows of a possibly sharded table.

    Args:
      params: Tensor, variable, list of shards, ``PartitionedVariable`` or
        ``ShardedVariable`` forming a ``[num_classes, ...]`` table.
      ids: Integer ``[n]`` class ids.
      partition_strategy: ``"mod"`` or ``"div"`` (see module docstring).
      name: Optional name scope.

    Returns:
      tf.Tensor: ``[n, ...]`` rows, with sparse (``tf.IndexedSlices``)
      gradients to ``params``.
    """
    with tf.name_scope(name or "gather_rows"):
        table = as_sharded_table(params, partition_strategy)
        return table.gather(tf.cast(ids, tf.int64))
