"""Class tables, whole or sharded: where each class lives, and the one door that wraps them.

A table is one of:

* a tensor, ``tf.Variable`` or ``keras.Variable``;
* a Python list/tuple of shards, or a TF1 ``PartitionedVariable``: class ids
  map to shards by ``partition_strategy`` exactly as
  ``tf.compat.v1.nn.embedding_lookup`` does (``"mod"``: class ``i`` is row
  ``i // n`` of shard ``i % n``; ``"div"``: shards hold consecutive ranges);
* a TF2 ``ShardedVariable``: one logical table whose row ``i`` is class ``i``,
  shards holding consecutive ranges, whatever ``partition_strategy`` says
  (TF's own v1 lookup disagrees between eager and graph mode here).

:class:`ShardLayout` is the one place that encodes where a class lives:
``locate`` reduces class ids to (shard, row) once, as TF's
``embedding_lookup`` does, and ``class_ids`` is its inverse. Gathering rows,
the full-softmax blocks and the label positions all go through it. Every
lookup is a gather per shard, so gradients reach the variables as
``tf.IndexedSlices`` and no shard is ever concatenated.

The layout, worked through for 10 classes in 3 shards::

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

import numpy as np
import tensorflow as tf

from tf_sampling._core import checks, loss_args

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


@dataclasses.dataclass(frozen=True)
class ShardLayout:
    """Where each class of a table lives: class id <-> (shard, row).

    Attributes:
      sizes: Static number of rows of each shard.
      contiguous: True when shards hold consecutive class ranges (``"div"`` or
        a ``ShardedVariable``), False for ``"mod"`` (class ``c`` is row
        ``c // num_shards`` of shard ``c % num_shards``).
    """

    sizes: tuple[int, ...]
    contiguous: bool

    @classmethod
    def even(cls, num_rows: int, num_shards: int, partition_strategy: str) -> ShardLayout:
        """The layout of ``num_rows`` classes split by ``partition_strategy`` (:func:`shard_sizes`)."""
        loss_args.check_partition_strategy(partition_strategy)
        return cls(shard_sizes(num_rows, num_shards), partition_strategy == "div")

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return len(self.sizes)

    @property
    def num_rows(self) -> int:
        """Total number of rows (classes)."""
        return sum(self.sizes)

    @property
    def starts(self) -> np.ndarray:
        """int64 ``[num_shards]``: the first class of each shard of a contiguous layout."""
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def locate(self, ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The shard holding each class id, and its row there.

        Args:
          ids: int64 class ids in ``[0, num_rows)``, of any shape.

        Returns:
          tuple: ``(shard, row)``, int32 and int64 tensors of ``ids``' shape.
        """
        if self.num_shards == 1:
            return tf.zeros_like(ids, tf.int32), ids
        if not self.contiguous:
            return tf.cast(ids % self.num_shards, tf.int32), ids // self.num_shards
        # tf.searchsorted wants the values' leading dimensions on the sorted
        # sequence too: search a flat view.
        flat = ids if ids.shape.rank == 1 else tf.reshape(ids, [-1])
        shard = tf.searchsorted(
            tf.constant(self.starts[1:], tf.int64), flat, side="right", out_type=tf.int32
        )
        if ids.shape.rank != 1:
            shard = tf.reshape(shard, tf.shape(ids))
        return shard, ids - tf.gather(tf.constant(self.starts, tf.int64), shard)

    def class_ids(self, shard: int, rows):
        """The class ids of ``rows`` of shard ``shard``: :meth:`locate`'s inverse.

        Args:
          shard: int, the shard.
          rows: integer rows of that shard, a tensor or a NumPy array of any
            shape.

        Returns:
          int64 class ids of ``rows``' shape: a tensor for a tensor, else a
          NumPy array.
        """
        rows = tf.cast(rows, tf.int64) if tf.is_tensor(rows) else np.asarray(rows, np.int64)
        if self.num_shards == 1:
            return rows
        if self.contiguous:
            return rows + int(self.starts[shard])
        return rows * self.num_shards + shard

    def shard_class_ids(self) -> list[np.ndarray]:
        """int64 ``[sizes[k]]`` per shard ``k``: entry ``j`` is the class in row ``j``."""
        return [self.class_ids(k, np.arange(size)) for k, size in enumerate(self.sizes)]

    def class_order(self) -> np.ndarray | None:
        """Position of each class in the concatenation of the shards.

        Returns:
          ``np.ndarray`` int64 ``[num_rows]`` where entry ``i`` is the row of the
          concatenated shards holding class ``i``, or None when that is the
          identity (contiguous shards).
        """
        if self.contiguous or self.num_shards == 1:
            return None
        classes_in_row_order = np.concatenate(self.shard_class_ids())
        order = np.empty_like(classes_in_row_order)
        order[classes_in_row_order] = np.arange(self.num_rows)
        return order


def shard_class_ids(num_rows: int, num_shards: int, partition_strategy: str) -> list[np.ndarray]:
    """Class ids held by each shard, in row order (``tf.nn.embedding_lookup``'s rule).

    Args:
      num_rows: int, number of classes.
      num_shards: int >= 1.
      partition_strategy: ``"div"`` or ``"mod"``; see the module docstring.

    Returns:
      list[np.ndarray]: ``num_shards`` int64 arrays; entry ``j`` of array ``k``
      is the class stored in row ``j`` of shard ``k``.
    """
    return ShardLayout.even(num_rows, num_shards, partition_strategy).shard_class_ids()


@dataclasses.dataclass(frozen=True)
class ShardedTable:
    """A table's shards and their :class:`ShardLayout`.

    Attributes:
      shards: The shards, each ``[rows_k, ...]``.
      layout: Where each class lives among them.
    """

    shards: tuple
    layout: ShardLayout

    @property
    def sizes(self) -> tuple[int, ...]:
        """Static number of rows of each shard."""
        return self.layout.sizes

    @property
    def num_rows(self) -> int:
        """Total number of rows (classes)."""
        return self.layout.num_rows

    @property
    def row_shape(self) -> tf.TensorShape:
        """Shape of one row (``[dim]`` for weights, ``[]`` for biases)."""
        return tf.TensorShape(self.shards[0].shape[1:])

    @property
    def dtype(self) -> tf.DType:
        """The shards' dtype."""
        return tf.as_dtype(self.shards[0].dtype)

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
        shard, row = self.layout.locate(ids)
        rows_by_shard = tf.dynamic_partition(row, shard, n)
        positions = tf.dynamic_partition(tf.range(tf.size(ids)), shard, n)
        rows = [tf.gather(s, part) for s, part in zip(self.shards, rows_by_shard, strict=True)]
        return tf.dynamic_stitch(positions, rows)


def _is_partitioned_variable(params) -> bool:
    return type(params).__name__ == "PartitionedVariable" and hasattr(params, "_get_variable_list")


def _as_shard(shard):
    """A shard as a ``tf.Variable`` (kept, for sparse gradients) or a tensor."""
    if isinstance(shard, tf.Variable):
        return shard
    # A Keras 3 variable is no tf.Variable: its `.value` is (under an autocast
    # scope, a cast copy of) the tf.Variable it holds. Create class weights with
    # autocast=False so a lookup never casts the whole table.
    value = getattr(shard, "value", None)
    if isinstance(value, tf.Variable) or (tf.is_tensor(shard) and tf.is_tensor(value)):
        return value
    return tf.convert_to_tensor(shard)


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
    elif _is_partitioned_variable(params) or isinstance(params, (list, tuple)):
        shards = list(params)
    else:
        shards = [params]
    if not shards:
        raise ValueError(
            f"`{arg_name}` must hold at least one shard, got an empty {type(params).__name__}."
        )
    shards = [_as_shard(s) for s in shards]
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
    layout = ShardLayout(tuple(int(s.shape[0]) for s in shards), contiguous)
    if not contiguous and layout.num_shards > 1:
        expected = shard_sizes(layout.num_rows, layout.num_shards)
        if layout.sizes != expected:
            raise ValueError(
                f"`{arg_name}` shard sizes {list(layout.sizes)} do not fit "
                f'partition_strategy="mod" over {layout.num_rows} rows (expected '
                f'{list(expected)}); use "div" for shards of consecutive class ranges.'
            )
    return ShardedTable(tuple(shards), layout)


def class_tables(
    weights,
    biases,
    inputs: tf.Tensor | None,
    num_classes: int | None,
    partition_strategy: str,
    same_shards: bool = False,
) -> tuple[ShardedTable, ShardedTable]:
    """Wraps and checks a class weight and bias table: the one door every loss takes.

    Args:
      weights: ``[num_classes, dim]`` float table in any supported form.
      biases: ``[num_classes]`` float table in any supported form.
      inputs: Optional ``[..., dim]`` tensor (already checked) whose last
        dimension must be the weights' ``dim`` when both are known.
      num_classes: Number of classes the tables must hold; None: as many as
        ``weights`` holds.
      partition_strategy: ``"mod"`` or ``"div"``.
      same_shards: Whether ``biases`` must be sharded as ``weights`` are, in
        sizes and layout (the full-softmax paths walk both shard by shard; a
        lookup locates each table's rows on its own).

    Returns:
      tuple: the weight and bias :class:`ShardedTable`.

    Raises:
      TypeError: a table is None or not floating-point.
      ValueError: a bad ``partition_strategy``, row counts that do not add up
        to ``num_classes``, tables of the wrong rank, bias shards unlike the
        weight shards (with ``same_shards``), or ``weights`` and ``inputs``
        disagreeing on ``dim``.
    """
    tables = []
    for arg_name, params, row_rank, shape in (
        ("weights", weights, 1, "[num_classes, dim]"),
        ("biases", biases, 0, "[num_classes]"),
    ):
        loss_args.check_table(params, arg_name, shape)
        table = as_sharded_table(params, partition_strategy, arg_name)
        checks.check_floating(table.dtype, arg_name)
        if num_classes is None:
            num_classes = table.num_rows
        loss_args.check_table_rows(
            arg_name, table.sizes, num_classes, table.row_shape, row_rank, shape
        )
        tables.append(table)
    weight_table, bias_table = tables
    if same_shards:
        loss_args.check_same_shards(weight_table.sizes, bias_table.sizes)
        contiguous = weight_table.layout.contiguous, bias_table.layout.contiguous
        if len(weight_table.shards) > 1 and contiguous[0] != contiguous[1]:
            # A ShardedVariable beside a "mod" list: row j of shard k would be
            # two different classes in the two tables.
            raise ValueError(
                "Argument `biases` must hold its classes in its shards as `weights` does "
                f"(consecutive class ranges: {contiguous[0]}). Received: consecutive class "
                f"ranges: {contiguous[1]}"
            )
    if inputs is not None:
        loss_args.check_inputs_dim(inputs, weight_table.row_shape[0])
    return weight_table, bias_table


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
