"""A class table walked in blocks of classes: what the exact full-softmax functions share.

The full logits ``inputs @ weights^T + biases`` are ``[n, num_classes]``:
4 GB for 1024 rows at 10^6 classes. ``full_softmax`` (the losses) and
``full_top_k`` walk the class table in blocks of ``chunk_size`` rows instead
and keep only per-row running values, so one block of logits,
``[n, chunk_size]``, is the largest temporary.

* **Arguments.** :func:`prepare` checks and wraps what every such function
  takes (the tables go through ``sharding.class_tables``) and picks the
  chunk size (:func:`auto_chunk_size`); :data:`COMMON_DOC` documents those
  arguments once, and :func:`fill_doc` writes them into docstrings.
* **Loops.** :func:`scan_blocks` runs the blocks of a shard in a
  ``tf.while_loop`` with one iteration in flight (``parallel_iterations=1``:
  several in flight would hold several blocks of logits) and a static trip
  count, plus one static tail block for the remainder, so every shape is
  static under ``jit_compile=True``. Shards run one after another
  (:func:`after` gates each loop on the previous one).
"""

from __future__ import annotations

import re
import textwrap
from typing import NamedTuple

import tensorflow as tf

from tf_sampling._core import checks, loss_args, sharding
from tf_sampling._core.sampled_logits import compute_dtype

# The automatic chunk size keeps one block of logits [n, chunk] under this
# many elements (32 MB in float32) ...
LOGITS_BLOCK_ELEMENTS = 2**23
# ... and one block of weights [chunk, dim] (cast to float32, and its
# gradient) under this many (64 MB in float32).
ROWS_BLOCK_ELEMENTS = 2**24
# Chunk sizes are multiples of this (matmul-friendly), and never below it.
CHUNK_ALIGN = 128
# Row count assumed for the automatic chunk size when the batch is unknown.
ASSUMED_BATCH = 1024
# All the logits in one block when they are at most this many elements (128 MB
# in float32): at that size recomputing blocks in the backward pass costs more
# time (16% of the PTB demo's step) than the memory it saves is worth.
ONE_SHOT_ELEMENTS = 2**25


# The arguments every blocked function takes, documented once (see fill_doc).
COMMON_DOC = {
    "tables": """
        weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
          ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
        biases: ``[num_classes]`` class biases, sharded like ``weights``.
        """,
    "inputs": """
        inputs: float ``[batch_size, dim]`` activations (float16, bfloat16,
          float32 or float64).
        """,
    "blocks": """
        partition_strategy: ``"mod"`` or ``"div"``, for sharded tables (the same
          class order rule as the sampled losses).
        chunk_size: Optional int, classes per block; default
          :func:`auto_chunk_size`. When every shard fits in one block the
          logits are computed at once (one-shot path).
        name: Name scope of the operation.
        """,
    "argument_errors": """
        ValueError, TypeError: for invalid arguments, naming the argument and
          the value received.
        """,
}


def doc_piece(*texts: str) -> str:
    """One docstring piece from several written apart (each dedented), in order."""
    return "\n".join(textwrap.dedent(text).strip("\n") for text in texts)


def fill_doc(pieces: dict[str, str]):
    """A decorator filling each ``{piece}`` line of a docstring from ``pieces``.

    The piece takes the indentation of the line it replaces, so the shared
    Args/Raises entries are written once and read in place by ``help()``.
    """

    def piece(match: re.Match) -> str:
        text = textwrap.dedent(pieces[match[2]]).strip("\n")
        return textwrap.indent(text, match[1])

    def fill(function):
        if function.__doc__:  # None under python -OO.
            function.__doc__ = re.sub(
                r"^( *)\{(\w+)\}$", piece, function.__doc__, flags=re.MULTILINE
            )
        return function

    return fill


def auto_chunk_size(batch_size: int | None, dim: int | None, num_classes: int) -> int:
    """The chunk size used when ``chunk_size`` is None.

    ``num_classes`` (one block, nothing recomputed) when all the logits
    ``[batch_size, num_classes]`` are within 2^25 elements; otherwise the
    largest multiple of 128 that keeps a block of logits
    ``[batch_size, chunk]`` within 2^23 elements and a block of weights
    ``[chunk, dim]`` within 2^24 elements, at least 128 and at most
    ``num_classes``. An unknown ``batch_size`` counts as 1024, an unknown
    ``dim`` as 512. At batch 1024 that is one block up to 32,768 classes
    and 8192 classes per block above, for ``dim <= 2048``.

    Args:
      batch_size: int or None, the number of rows of ``inputs``.
      dim: int or None, the width of ``inputs``.
      num_classes: int, the number of classes.

    Returns:
      int: the number of classes per block.
    """
    rows = max(int(batch_size or ASSUMED_BATCH), 1)
    width = max(int(dim or 512), 1)
    if rows * num_classes <= ONE_SHOT_ELEMENTS:
        return num_classes
    chunk = min(LOGITS_BLOCK_ELEMENTS // rows, ROWS_BLOCK_ELEMENTS // width)
    chunk = max(CHUNK_ALIGN, chunk // CHUNK_ALIGN * CHUNK_ALIGN)
    return min(chunk, num_classes)


def scan_blocks(rows: int, chunk: int, step, state: tuple, first: int = 0) -> tuple:
    """Runs ``state = step(start, size, state)`` over consecutive row blocks.

    Blocks ``first, first + 1, ...`` of ``chunk`` rows run in a
    ``tf.while_loop`` (a Python loop when eager), then the ``rows % chunk``
    remaining rows as one static tail block.

    Args:
      rows: int, rows of the shard.
      chunk: int, rows per block.
      step: callable ``(start int32 scalar, size int, state tuple) -> tuple``.
      state: tuple of tensors threaded through the blocks.
      first: int, index of the first full block to run.

    Returns:
      tuple: the final state.
    """
    full, tail = divmod(rows, chunk)
    count = full - first
    if count == 1:
        state = step(tf.constant(first * chunk, tf.int32), chunk, state)
    elif count > 1:

        def body(j, *carried):
            return (j + 1, *step(j * chunk, chunk, carried))

        out = tf.while_loop(
            lambda j, *_: j < full,
            body,
            (tf.constant(first, tf.int32), *state),
            parallel_iterations=1,
            maximum_iterations=count,
        )
        state = tuple(out[1:])
    if tail:
        state = step(tf.constant(full * chunk, tf.int32), tail, state)
    return tuple(state)


def block_logits(x, w_shard, b_shard, start, size: int, dtype):
    """Logits ``[n, size]`` of rows ``[start, start + size)``, and that weight block ``[size, dim]``."""
    dim = w_shard.shape[1]
    w = tf.cast(tf.slice(w_shard, tf.stack([start, 0]), [size, dim]), dtype)
    b = tf.cast(tf.slice(b_shard, tf.reshape(start, [1]), [size]), dtype)
    return tf.nn.bias_add(tf.matmul(x, w, transpose_b=True), b), w


def after(tensors: tuple, previous: tuple) -> tuple:
    """``tensors`` gated on ``previous``, so shard loops run one at a time."""
    if tf.executing_eagerly() or not previous:
        return tensors
    with tf.control_dependencies(previous):
        return tuple(tf.identity(t) for t in tensors)


class Prepared(NamedTuple):
    """The checked common arguments of a blocked function.

    Attributes:
      inputs: ``[n, dim]`` float tensor.
      weight_table, bias_table: the class tables, sharded alike.
      dtype: the compute dtype (float64 when an operand is, else float32).
      chunk: int, classes per block (at most ``num_classes``).
      num_classes: int, the tables' rows.
    """

    inputs: tf.Tensor
    weight_table: sharding.ShardedTable
    bias_table: sharding.ShardedTable
    dtype: tf.DType
    chunk: int
    num_classes: int


def prepare(weights, biases, inputs, num_classes, partition_strategy, chunk_size) -> Prepared:
    """Checks and wraps the common arguments.

    Args:
      weights, biases, inputs, partition_strategy, chunk_size: As the public
        functions take them (see :data:`COMMON_DOC`).
      num_classes: int, or None for as many as ``weights`` holds.

    Returns:
      Prepared: the checked arguments.

    Raises:
      ValueError, TypeError: naming the argument and the value received.
    """
    if num_classes is not None:
        num_classes = checks.check_int(num_classes, "num_classes")
    loss_args.check_partition_strategy(partition_strategy)
    inputs = loss_args.check_inputs(inputs)
    chunk_size = loss_args.check_chunk_size(chunk_size)
    weight_table, bias_table = sharding.class_tables(
        weights, biases, inputs, num_classes, partition_strategy, same_shards=True
    )
    num_classes = weight_table.num_rows
    dim = weight_table.row_shape[0]
    if dim is None:
        raise ValueError(
            f"`weights` must have a static dim, got rows of shape {weight_table.row_shape}."
        )
    if chunk_size is None:
        chunk_size = auto_chunk_size(inputs.shape[0], dim, num_classes)
    dtype = compute_dtype(inputs.dtype, weight_table.dtype, bias_table.dtype)
    return Prepared(
        inputs, weight_table, bias_table, dtype, min(chunk_size, num_classes), num_classes
    )


def read(shard) -> tf.Tensor:
    """A shard as a tensor, read before any custom gradient.

    Read there, a variable's gradient reaches it through the read (a dense
    tensor per shard).
    """
    return tf.convert_to_tensor(shard)
