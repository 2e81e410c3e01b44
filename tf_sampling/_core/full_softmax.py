"""Exact full-softmax losses and top-k over all classes, in bounded memory.

The full logits ``inputs @ weights^T + biases`` are ``[n, num_classes]``:
4 GB for 1024 rows at 10^6 classes. Everything here walks the class table in
blocks of ``chunk_size`` rows instead and keeps only per-row running values
(a running maximum and sum for the log-sum-exp, a running top-k), so one
block of logits, ``[n, chunk_size]``, is the largest temporary.

* **Losses.** Softmax cross-entropy and the summed sigmoid cross-entropy
  are sums over classes, so blocks are visited in each shard's storage order;
  only the true classes need the class order rule, and they are found by
  their (shard, row) position inside each block. The custom gradient
  recomputes each block's logits in the backward pass rather than keeping
  them: three matmuls per block there, one in the forward pass.
* **Weight gradients are dense**, one ``[rows, dim]`` tensor per shard: every
  class has a nonzero softmax gradient, so ``tf.IndexedSlices`` would only add
  an index per row and a scatter in the optimizer. In graphs (``tf.function``,
  TF1) the backward writes each block into that tensor in place; eagerly it
  keeps the blocks and concatenates them (twice the gradient's size briefly).
* **Top-k** keeps the ``k`` best (score, id) pairs per row; ties go to the
  lower class id, as ``tf.math.top_k`` breaks them on the full row.
* **Loops.** Blocks of a shard run in a ``tf.while_loop`` with one iteration
  in flight (``parallel_iterations=1``: several in flight would hold several
  blocks of logits) and a static trip count, plus one static tail block for
  the remainder, so every shape is static under ``jit_compile=True``.
  Shards run one after another (each loop waits on the previous one).
* **One-shot path.** When every shard fits in one block, no loop is built:
  the logits are computed at once, and the loss keeps them for its gradient
  instead of recomputing.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from tf_sampling._core import checks, loss_args, sharding, xla
from tf_sampling._core.sampled_logits import class_tables, compute_dtype
from tf_sampling._core.xla import in_xla_context

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


def _class_ids(table, shard: int, rows: tf.Tensor) -> tf.Tensor:
    """Class ids (int64) of local ``rows`` of ``table.shards[shard]``."""
    rows = tf.cast(rows, tf.int64)
    if len(table.shards) == 1:
        return rows
    if table.contiguous:
        return rows + int(sum(table.sizes[:shard]))
    return rows * len(table.shards) + shard


def _label_positions(table, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The shard and local row of each label, by the class order rule.

    Args:
      table: the weights' :class:`~tf_sampling._core.sharding.ShardedTable`.
      labels: int64 ``[n, num_true]`` class ids.

    Returns:
      tuple: int32 shard indices and int64 local rows, both ``[n, num_true]``.
    """
    n = len(table.shards)
    if n == 1:
        return tf.zeros_like(labels, tf.int32), labels
    if table.contiguous:
        bounds = np.cumsum(table.sizes)
        shard = tf.searchsorted(
            tf.reshape(tf.constant(bounds[:-1], tf.int64), [1, -1]) + tf.zeros_like(labels[:, :1]),
            labels,
            side="right",
            out_type=tf.int32,
        )
        starts = tf.constant(np.concatenate([[0], bounds[:-1]]), tf.int64)
        return shard, labels - tf.gather(starts, shard)
    return tf.cast(labels % n, tf.int32), labels // n


def _scan_blocks(rows: int, chunk: int, step, state: tuple, first: int = 0) -> tuple:
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


def _block_logits(x, w_shard, b_shard, start, size: int, dtype):
    """Logits ``[n, size]`` of rows ``[start, start + size)`` and that weight block."""
    dim = w_shard.shape[1]
    w = tf.cast(tf.slice(w_shard, tf.stack([start, 0]), [size, dim]), dtype)
    b = tf.cast(tf.slice(b_shard, tf.reshape(start, [1]), [size]), dtype)
    return tf.nn.bias_add(tf.matmul(x, w, transpose_b=True), b), w


def _in_block(label_shard, label_row, shard: int, start, size: int):
    """Which labels fall in the block, and their columns in it (0 where not)."""
    offset = label_row - tf.cast(start, tf.int64)
    # tf.equal: `==` on tensors is identity, not elementwise, in TF1 graphs.
    hit = tf.equal(label_shard, shard) & (offset >= 0) & (offset < size)
    return hit, tf.cast(tf.where(hit, offset, 0), tf.int32)


def _block_targets(hit, cols, z, values) -> tf.Tensor:
    """``[n, size]`` targets of a block: ``values`` (``[n, 1]`` or scalar) at each hit label.

    A class listed twice for a row gets twice the value.
    """
    rows = tf.broadcast_to(tf.expand_dims(tf.range(tf.shape(cols)[0]), 1), tf.shape(cols))
    updates = tf.where(hit, values + tf.zeros(tf.shape(cols), z.dtype), tf.zeros([], z.dtype))
    # tf.shape(z): static when z's shape is, so the result keeps it.
    return tf.scatter_nd(tf.stack([rows, cols], -1), updates, tf.shape(z))


def _row_buffer(shape, dtype) -> tf.Tensor:
    """A fresh ``shape`` tensor for :func:`_write_rows` to fill completely.

    ``InplaceUpdate`` writes into its input's buffer whatever else holds it,
    so the buffer must be new on every run and never shared: ``Empty`` is a
    stateful op (no constant folding, no merging of equal ops), unlike
    ``tf.zeros``. Under XLA the scatter is functional and zeros are fine.
    """
    if in_xla_context():
        return tf.zeros(shape, dtype)
    return tf.raw_ops.Empty(shape=list(shape), dtype=dtype, init=False)


def _write_rows(buffer: tf.Tensor, start, block: tf.Tensor) -> tf.Tensor:
    """``buffer[start:start + len(block)] = block``, in place outside XLA.

    Measured on CPU in a ``tf.while_loop``: ``InplaceUpdate`` reuses the
    buffer (``tensor_scatter_nd_update`` copies it every iteration) but has no
    XLA kernel; under XLA the scatter is updated in place.
    """
    index = start + tf.range(tf.shape(block)[0])
    if in_xla_context():
        return tf.tensor_scatter_nd_update(buffer, tf.expand_dims(index, 1), block)
    return tf.raw_ops.InplaceUpdate(x=buffer, i=index, v=block)


def _after(tensors: tuple, previous: tuple) -> tuple:
    """``tensors`` gated on ``previous``, so shard loops run one at a time."""
    if tf.executing_eagerly() or not previous:
        return tensors
    with tf.control_dependencies(previous):
        return tuple(tf.identity(t) for t in tensors)


def _prepare(weights, biases, inputs, num_classes, partition_strategy, chunk_size):
    """Checks and wraps the common arguments.

    Returns:
      tuple: ``(inputs, weight_table, bias_table, dtype, chunk)``.
    """
    num_classes = checks.check_int(num_classes, "num_classes")
    loss_args.check_partition_strategy(partition_strategy)
    inputs = loss_args.check_inputs(inputs)
    chunk_size = loss_args.check_chunk_size(chunk_size)
    weight_table, bias_table = class_tables(
        weights, biases, inputs, num_classes, partition_strategy
    )
    if weight_table.sizes != bias_table.sizes:
        raise ValueError(
            f"`biases` shard sizes {list(bias_table.sizes)} must equal `weights` shard sizes, "
            f"got {list(weight_table.sizes)} for `weights`."
        )
    if not weight_table.dtype.is_floating or not bias_table.dtype.is_floating:
        raise TypeError(
            "`weights` and `biases` must be floating-point, got dtypes "
            f"{weight_table.dtype.name} and {bias_table.dtype.name}."
        )
    dim = weight_table.row_shape[0]
    if dim is None:
        raise ValueError(
            f"`weights` must have a static dim, got rows of shape {weight_table.row_shape}."
        )
    if chunk_size is None:
        chunk_size = auto_chunk_size(inputs.shape[0], dim, num_classes)
    dtype = compute_dtype(inputs.dtype, weight_table.dtype, bias_table.dtype)
    return inputs, weight_table, bias_table, dtype, min(chunk_size, num_classes)


def _read(shard) -> tf.Tensor:
    # Read variables here, outside the custom gradient, so their gradient
    # reaches them through the read (a dense tensor per shard).
    return tf.convert_to_tensor(shard)


def _chunked_loss(
    objective,
    weights,
    biases,
    labels,
    inputs,
    num_classes,
    num_true,
    partition_strategy,
    chunk_size,
    with_rank=False,
):
    """The shared body of the two full losses (see their docstrings).

    With ``with_rank``, also returns, from the same pass over the blocks, the
    int64 ``[n]`` number of classes whose logit is strictly above the first
    true class's (its rank; top-``k`` accuracy is ``rank < k``, ties counted
    in, as ``tf.math.in_top_k`` does). It has no gradient.
    """
    num_true = checks.check_int(num_true, "num_true")
    inputs, weight_table, bias_table, dtype, chunk = _prepare(
        weights, biases, inputs, num_classes, partition_strategy, chunk_size
    )
    labels = loss_args.normalize_labels(
        labels, num_true, num_classes, loss_args.static_or_dynamic_batch_size(inputs)
    )
    bad_rows = None
    if in_xla_context():
        # XLA drops the range assert: a row with a bad label gets a NaN loss
        # (and NaN gradients) instead of a plausible number, and the lookups
        # read class 0 for its bad labels.
        bad_rows = xla.out_of_range_rows(labels, num_classes)
        inputs = xla.nan_rows(inputs, bad_rows)
        labels = tf.where((labels < 0) | (labels >= num_classes), tf.zeros([], tf.int64), labels)
    label_shard, label_row = _label_positions(weight_table, labels)
    sizes = weight_table.sizes
    num_shards = len(sizes)
    one_shot = max(sizes) <= chunk
    softmax = objective == "softmax"
    inv_true = 1.0 / num_true

    @tf.custom_gradient
    def loss_fn(x, *tables):
        w_shards, b_shards = tables[:num_shards], tables[num_shards:]
        xc = tf.cast(x, dtype)
        n = tf.shape(xc)[0]
        kept_logits = []
        if with_rank:
            # The first true logit from its row alone; the block pass counts
            # the classes above it (its own column excluded, so rounding
            # between the two products cannot count it).
            first = labels[:, 0]
            rows = sharding.ShardedTable(tuple(w_shards), weight_table.contiguous).gather(first)
            bias = sharding.ShardedTable(tuple(b_shards), bias_table.contiguous).gather(first)
            reference = tf.stop_gradient(
                tf.reduce_sum(xc * tf.cast(rows, dtype), 1) + tf.cast(bias, dtype)
            )

        def count_above(z, hit, cols, size, above):
            own = hit[:, :1] & tf.equal(tf.range(size)[tf.newaxis], cols[:, :1])
            higher = (z > tf.expand_dims(reference, 1)) & tf.logical_not(own)
            return above + tf.reduce_sum(tf.cast(higher, tf.int64), 1)

        def forward_step(x_gated, shard, start, size, state):
            z, _ = _block_logits(x_gated, w_shards[shard], b_shards[shard], start, size, dtype)
            if one_shot:
                kept_logits.append(z)
            hit, cols = _in_block(label_shard, label_row, shard, start, size)
            if with_rank:
                above = count_above(z, hit, cols, size, state[-1])
                return (*forward_step_loss(z, hit, cols, state[:-1]), above)
            return forward_step_loss(z, hit, cols, state)

        def forward_step_loss(z, hit, cols, state):
            if not softmax:
                # Per class, then summed: softplus(z) - target * z summed over
                # the classes first would overflow (to NaN) where the exact
                # loss is finite, e.g. two true logits near FLT_MAX.
                # TF's form relu(z) - t * z + log1p(exp(-|z|)), with t * z only
                # where t > 0: 0 * -inf would make a masked (-inf) class NaN.
                targets = _block_targets(hit, cols, z, tf.constant(inv_true, dtype))
                true_part = tf.where(targets > 0, targets * z, tf.zeros([], dtype))
                per_class = tf.nn.relu(z) - true_part + tf.math.log1p(tf.exp(-tf.abs(z)))
                return (state[0] + tf.reduce_sum(per_class, 1),)
            # Each true logit is kept as it is (each lies in exactly one block)
            # and averaged only once the maximum is known; see the loss below.
            true_logits = tf.where(hit, tf.gather(z, cols, batch_dims=1), state[2])
            running_max, running_sum = state[0], state[1]
            new_max = tf.maximum(running_max, tf.reduce_max(z, 1))
            running_sum = running_sum * tf.exp(running_max - new_max) + tf.reduce_sum(
                tf.exp(z - tf.expand_dims(new_max, 1)), 1
            )
            return new_max, running_sum, true_logits

        zeros = tf.zeros([n], dtype)
        if softmax:
            # The running maximum starts at the lowest finite value, not -inf:
            # a block of only -inf logits (a masked range of classes) then
            # adds exp(-inf - lowest) = 0, where -inf - -inf would be NaN.
            state = (
                tf.fill([n], tf.constant(dtype.min, dtype)),
                zeros,
                tf.zeros(tf.shape(labels), dtype),
            )
        else:
            state = (zeros,)
        if with_rank:
            state = (*state, tf.zeros([n], tf.int64))
        for shard in range(num_shards):
            (x_gated,) = _after((xc,), state if shard else ())
            state = _scan_blocks(
                sizes[shard],
                chunk,
                lambda start, size, st, x_gated=x_gated, shard=shard: forward_step(
                    x_gated, shard, start, size, st
                ),
                state,
            )
        rank = None
        if with_rank:
            state, rank = state[:-1], state[-1]
        if softmax:
            row_max, total = state[0], state[1]
            # The mean of the true logits minus the maximum (all <= 0): a true
            # logit equal to the maximum loses no digits to cancellation, and
            # true logits near FLT_MAX cannot overflow their sum.
            shifted_true = state[2] - tf.expand_dims(row_max, 1)
            losses = tf.math.log(total) - tf.reduce_mean(shifted_true, 1)
            if with_rank:
                # A row whose loss is NaN (NaN weights or inputs, or a bad
                # label under XLA) has no rank: never counted as a top-k hit.
                undefined = tf.math.is_nan(losses) | tf.math.is_nan(reference)
                rank = tf.where(undefined, tf.constant(num_classes, tf.int64), rank)
        else:
            losses = state[0]

        def backward(upstream, *_rank_upstream):
            up = tf.cast(upstream, dtype)
            up_column = tf.expand_dims(up, 1)
            eager = tf.executing_eagerly()

            def block_gradient(shard, start, size, dx, z=None):
                # Gated on the running dx: one shard's blocks after another's.
                (x_gated,) = _after((xc,), (dx,))
                if z is None:
                    z, w = _block_logits(
                        x_gated, w_shards[shard], b_shards[shard], start, size, dtype
                    )
                else:
                    w = tf.cast(w_shards[shard], dtype)
                if softmax:
                    # exp(z - max) / sum rather than exp(z - log_normalizer):
                    # near FLT_MAX, max + log(sum) rounds back to max.
                    probs = tf.exp(z - tf.expand_dims(row_max, 1)) * tf.expand_dims(1.0 / total, 1)
                else:
                    probs = tf.sigmoid(z)
                hit, cols = _in_block(label_shard, label_row, shard, start, size)
                targets = _block_targets(hit, cols, z, up_column * inv_true)
                # d loss / d logit = (probability - target) * upstream.
                grad_logits = probs * up_column - targets
                dw = tf.matmul(grad_logits, x_gated, transpose_a=True)
                db = tf.reduce_sum(grad_logits, 0)
                dx_new = dx + tf.matmul(grad_logits, w)
                # Static shapes kept (e.g. a batch of 0): the loop carries dx.
                dx_new.set_shape(dx.shape)
                return dx_new, dw, db

            dx = tf.zeros_like(xc)
            dws, dbs = [], []
            for shard in range(num_shards):
                w_dtype, b_dtype = w_shards[shard].dtype, b_shards[shard].dtype
                if one_shot:
                    dx, dw, db = block_gradient(shard, 0, sizes[shard], dx, kept_logits[shard])
                    dws.append(tf.cast(dw, w_dtype))
                    dbs.append(tf.cast(db, b_dtype))
                elif eager:
                    # Eager tensors cannot be updated in place: keep the blocks.
                    w_blocks, b_blocks = [], []

                    def eager_step(
                        start,
                        size,
                        st,
                        shard=shard,
                        w_blocks=w_blocks,
                        b_blocks=b_blocks,
                        w_dtype=w_dtype,
                        b_dtype=b_dtype,
                    ):
                        dx_new, dw, db = block_gradient(shard, start, size, st[0])
                        w_blocks.append(tf.cast(dw, w_dtype))
                        b_blocks.append(tf.cast(db, b_dtype))
                        return (dx_new,)

                    (dx,) = _scan_blocks(sizes[shard], chunk, eager_step, (dx,))
                    dws.append(tf.concat(w_blocks, 0))
                    dbs.append(tf.concat(b_blocks, 0))
                else:

                    def graph_step(start, size, st, shard=shard, w_dtype=w_dtype, b_dtype=b_dtype):
                        dx_new, dw, db = block_gradient(shard, start, size, st[0])
                        return (
                            dx_new,
                            _write_rows(st[1], start, tf.cast(dw, w_dtype)),
                            _write_rows(st[2], start, tf.cast(db, b_dtype)),
                        )

                    dx, dw, db = _scan_blocks(
                        sizes[shard],
                        chunk,
                        graph_step,
                        (
                            dx,
                            _row_buffer(w_shards[shard].shape, w_dtype),
                            _row_buffer(b_shards[shard].shape, b_dtype),
                        ),
                    )
                    dws.append(dw)
                    dbs.append(db)
            return [tf.cast(dx, x.dtype), *dws, *dbs]

        if with_rank:
            return (losses, rank), backward
        return losses, backward

    w_read = [_read(s) for s in weight_table.shards]
    b_read = [_read(s) for s in bias_table.shards]
    out = loss_fn(inputs, *w_read, *b_read)
    if bad_rows is not None:
        # NaN whatever the arithmetic made of the NaN inputs.
        losses = xla.nan_rows(out[0] if with_rank else out, bad_rows)
        return (losses, out[1]) if with_rank else losses
    return out


def full_softmax_cross_entropy(
    weights,
    biases,
    labels,
    inputs,
    num_classes,
    num_true=1,
    partition_strategy="mod",
    chunk_size=None,
    name="full_softmax_cross_entropy",
) -> tf.Tensor:
    """Exact softmax cross-entropy over all classes, without ``[n, num_classes]`` logits.

    The loss the sampled softmax losses estimate: ``logsumexp(logits) -
    mean(true logits)`` per row, with ``logits = inputs @ weights^T + biases``
    over every class and target ``1 / num_true`` on each true class (a class
    listed twice counts twice). Equal, forward and gradient, to
    ``tf.nn.softmax_cross_entropy_with_logits`` on the full logits, but
    computed ``chunk_size`` classes at a time with a streaming log-sum-exp;
    the gradient recomputes each block instead of keeping the logits.

    Memory: one ``[batch_size, chunk_size]`` block of logits (and a few
    elementwise copies of it) at a time, plus, for the gradient, a dense
    ``[rows, dim]`` weight gradient per shard. Time: the forward pass is one
    full-logits matmul; the backward pass recomputes it and adds the two
    gradient matmuls (4 matmuls per step against TensorFlow's 3).

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      labels: integer ``[batch_size, num_true]`` target classes, or floats
        holding whole numbers (cast; a fractional one is an error)
        (``[batch_size]`` accepted when ``num_true`` is 1).
      inputs: float ``[batch_size, dim]`` activations (float16, bfloat16,
        float32 or float64).
      num_classes: int, number of classes.
      num_true: int, number of target classes per example.
      partition_strategy: ``"mod"`` or ``"div"``, for sharded tables (the same
        class order rule as the sampled losses).
      chunk_size: Optional int, classes per block; default
        :func:`auto_chunk_size` (at batch 1024: one block up to 32,768
        classes, 8192 classes above). When every shard fits in one block the
        logits are computed at once (one-shot path).
      name: Name scope of the operation.

    Returns:
      tf.Tensor: ``[batch_size]`` per-example losses, float32 (float64 when an
      operand is float64). Gradients reach ``inputs`` (its dtype), and each
      weight and bias shard as a dense tensor of its shape and dtype.

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received.
      tf.errors.InvalidArgumentError: at run time for labels outside
        ``[0, num_classes)`` (under ``jit_compile=True``, where XLA drops
        asserts, their rows get a NaN loss and NaN gradients instead).
    """
    with tf.name_scope(name or "full_softmax_cross_entropy"):
        return _chunked_loss(
            "softmax",
            weights,
            biases,
            labels,
            inputs,
            num_classes,
            num_true,
            partition_strategy,
            chunk_size,
        )


def full_sigmoid_cross_entropy(
    weights,
    biases,
    labels,
    inputs,
    num_classes,
    num_true=1,
    partition_strategy="mod",
    chunk_size=None,
    name="full_sigmoid_cross_entropy",
) -> tf.Tensor:
    """Exact sum over all classes of the sigmoid cross-entropy, in blocks.

    NCE's full counterpart: ``sum_c sigmoid_cross_entropy(target_c, logit_c)``
    per row with target ``1 / num_true`` on each true class and 0 elsewhere,
    i.e. ``sum_c softplus(logit_c) - mean(true logits)``. Equal, forward and
    gradient, to ``tf.nn.sigmoid_cross_entropy_with_logits`` on the full
    logits summed over classes; same blocks, memory and cost as
    :func:`full_softmax_cross_entropy`.

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      labels: integer ``[batch_size, num_true]`` target classes, or floats
        holding whole numbers (cast; a fractional one is an error)
        (``[batch_size]`` accepted when ``num_true`` is 1).
      inputs: float ``[batch_size, dim]`` activations.
      num_classes: int, number of classes.
      num_true: int, number of target classes per example.
      partition_strategy: ``"mod"`` or ``"div"``, for sharded tables.
      chunk_size: Optional int, classes per block (default
        :func:`auto_chunk_size`).
      name: Name scope of the operation.

    Returns:
      tf.Tensor: ``[batch_size]`` per-example losses, float32 (float64 when an
      operand is float64).

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received.
      tf.errors.InvalidArgumentError: at run time for labels outside
        ``[0, num_classes)`` (under ``jit_compile=True``, where XLA drops
        asserts, their rows get a NaN loss and NaN gradients instead).
    """
    with tf.name_scope(name or "full_sigmoid_cross_entropy"):
        return _chunked_loss(
            "sigmoid",
            weights,
            biases,
            labels,
            inputs,
            num_classes,
            num_true,
            partition_strategy,
            chunk_size,
        )


def full_softmax_cross_entropy_and_rank(
    weights,
    biases,
    labels,
    inputs,
    num_classes,
    num_true=1,
    partition_strategy="mod",
    chunk_size=None,
    name="full_softmax_cross_entropy_and_rank",
) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`full_softmax_cross_entropy` and the first true class's rank, in one pass.

    What evaluation needs: the loss (and perplexity) and top-``k`` accuracy for
    any ``k`` (``rank < k``), for the price of one pass over the table instead
    of two (:func:`full_top_k` keeps a running top-k, which costs more than
    counting).

    Args:
      weights, biases, labels, inputs, num_classes, num_true,
        partition_strategy, chunk_size: As :func:`full_softmax_cross_entropy`.
      name: Name scope of the operation.

    Returns:
      tuple: ``(losses, rank)``: float32 ``[batch_size]`` per-example losses,
      with their gradient, and int64 ``[batch_size]``, the number of classes
      whose logit is strictly above that of the first true class (ties count
      as not above, as in ``tf.math.in_top_k``; the first true logit is
      computed from its own row, so a logit within rounding of it may count
      either way). The rank has no gradient.
    """
    with tf.name_scope(name or "full_softmax_cross_entropy_and_rank"):
        return _chunked_loss(
            "softmax",
            weights,
            biases,
            labels,
            inputs,
            num_classes,
            num_true,
            partition_strategy,
            chunk_size,
            with_rank=True,
        )


def _shape_error(message: str) -> Exception:
    """The class ``tf.math.top_k`` raises for a bad static ``k``: eagerly an op error, else ValueError."""
    if tf.executing_eagerly():
        return tf.errors.InvalidArgumentError(None, None, message)
    return ValueError(message)


def _k_messages(k, num_classes: int) -> tuple[str, str]:
    """The errors for a negative and a too large ``k``, with ``tf.math.top_k``'s words."""
    negative = f"`k` must be non-negative: Need k >= 0, got {k} (k={k})."
    too_large = (
        f"`k` must be <= num_classes: input must have at least k columns. Had {num_classes}, "
        f"needed {k} (the logits must have last dimension >= k = {k}), got k={k}."
    )
    return negative, too_large


def _check_k(k, num_classes: int):
    """``full_top_k``'s ``k``: an int in ``[0, num_classes]``, or an int64 scalar tensor.

    A Python/NumPy integer, or a tensor whose value is known (eagerly, or a
    constant), is checked now; another tensor is checked when it runs.

    Raises:
      TypeError: neither an integer nor an integer tensor (e.g. 2.0).
      tf.errors.InvalidArgumentError, ValueError: out of range or not a
        scalar (see :func:`_shape_error`); at run time, an
        ``InvalidArgumentError``.
    """
    if isinstance(k, bool):
        raise TypeError(f"`k` must be a Python int or an integer scalar tensor, got {k!r}.")
    if not isinstance(k, numbers.Integral):
        if isinstance(k, numbers.Real) or not (tf.is_tensor(k) or isinstance(k, np.ndarray)):
            raise TypeError(
                f"`k` must be a Python int or an integer scalar tensor, got {k!r} of type "
                f"{type(k).__name__}."
            )
        tensor = tf.convert_to_tensor(k)
        if not tensor.dtype.is_integer or tensor.dtype in (tf.uint64, tf.uint32):
            raise TypeError(
                f"`k` must be a Python int or an integer scalar tensor, got dtype "
                f"{tensor.dtype.name}."
            )
        if tensor.shape.rank not in (None, 0):
            raise _shape_error(f"`k` must be scalar, got shape {tensor.shape.as_list()}.")
        static = tf.get_static_value(tensor)
        if static is None:
            k = tf.cast(tf.ensure_shape(tensor, []), tf.int64)
            if in_xla_context():
                return k  # No run-time checks there (nor a top_k of a non-constant k).
            negative, too_large = _k_messages("{}", num_classes)
            checks = [
                tf.debugging.Assert(
                    k >= 0, [tf.strings.format(negative, (k,) * negative.count("{}"))]
                ),
                tf.debugging.Assert(
                    k <= num_classes, [tf.strings.format(too_large, (k,) * too_large.count("{}"))]
                ),
            ]
            with tf.control_dependencies(checks):
                return tf.identity(k)
        k = static
    k = int(k)
    negative, too_large = _k_messages(k, num_classes)
    if k < 0:
        raise _shape_error(negative)
    if k > num_classes:
        raise _shape_error(too_large)
    return k


def _at_most(k, width):
    """``min(k, width)``: a Python int when both are, else an int64 tensor."""
    if isinstance(k, int) and isinstance(width, int):
        return min(k, width)
    return tf.minimum(tf.cast(k, tf.int64), tf.cast(width, tf.int64))


def _width(t: tf.Tensor):
    """The last dimension of a rank-2 tensor: static when known."""
    return t.shape[1] if t.shape[1] is not None else tf.shape(t, out_type=tf.int64)[1]


def full_top_k(
    weights,
    biases,
    inputs,
    k,
    num_classes=None,
    partition_strategy="mod",
    chunk_size=None,
    name="full_top_k",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact top-``k`` classes by logit, without ``[n, num_classes]`` logits.

    The same result as ``tf.math.top_k(logits, k)`` on the full logits
    ``inputs @ weights^T + biases`` in class order (ties go to the lower class
    id), computed ``chunk_size`` classes at a time with a running top-k. The
    scores carry no gradient.

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      inputs: float ``[batch_size, dim]`` activations.
      k: int, or an integer scalar tensor (as ``tf.math.top_k`` takes), the
        number of classes to return, in ``[0, num_classes]``.
      num_classes: Optional int, checked against the tables when given.
      partition_strategy: ``"mod"`` or ``"div"``, for sharded tables.
      chunk_size: Optional int, classes per block (default
        :func:`auto_chunk_size`, raised to ``k`` if smaller).
      name: Name scope of the operation.

    Returns:
      tuple: ``(scores, ids)``, both ``[batch_size, k]``, sorted by descending
      score: float32 logits (float64 when an operand is float64) and int64
      class ids.

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received.
      tf.errors.InvalidArgumentError: a negative ``k`` or one above
        ``num_classes``, eagerly or, for a ``k`` only known then, at run time;
        in a graph a ``k`` known when it is built raises ``ValueError``, the
        classes ``tf.math.top_k`` raises. The message holds TF's words too.
    """
    with tf.name_scope(name or "full_top_k"):
        if num_classes is None:
            num_classes = sharding.as_sharded_table(weights, partition_strategy, "weights").num_rows
        num_classes = checks.check_int(num_classes, "num_classes")
        k = _check_k(k, num_classes)
        inputs, weight_table, bias_table, dtype, chunk = _prepare(
            weights, biases, inputs, num_classes, partition_strategy, chunk_size
        )
        if isinstance(k, int):
            chunk = max(chunk, min(k, num_classes))
        x = tf.stop_gradient(tf.cast(inputs, dtype))
        w_shards = [tf.stop_gradient(_read(s)) for s in weight_table.shards]
        b_shards = [tf.stop_gradient(_read(s)) for s in bias_table.shards]
        # Within a shard, ids grow with the row, so merging the running best
        # (earlier, lower ids) before a block's best keeps top_k's lower-index
        # tie rule equal to the lower-id rule.

        def merge(x_gated, shard, start, size, state):
            z, _ = _block_logits(x_gated, w_shards[shard], b_shards[shard], start, size, dtype)
            scores, positions = tf.math.top_k(z, _at_most(k, size))
            ids = _class_ids(weight_table, shard, positions + start)
            scores = tf.concat([state[0], scores], 1)
            ids = tf.concat([state[1], ids], 1)
            scores, best = tf.math.top_k(scores, _at_most(k, _width(scores)))
            return scores, tf.gather(ids, best, batch_dims=1)

        results = []
        previous = ()
        for shard, rows in enumerate(weight_table.sizes):
            size = min(chunk, rows)
            start = tf.constant(0, tf.int32)
            (x_gated,) = _after((x,), previous)
            z, _ = _block_logits(x_gated, w_shards[shard], b_shards[shard], start, size, dtype)
            scores, positions = tf.math.top_k(z, _at_most(k, size))
            state = (scores, _class_ids(weight_table, shard, positions))
            if rows > size:
                state = _scan_blocks(
                    rows,
                    chunk,
                    lambda s0, sz, st, x_gated=x_gated, shard=shard: merge(
                        x_gated, shard, s0, sz, st
                    ),
                    state,
                    first=1,
                )
            results.append(state)
            previous = state
        if len(results) == 1:
            return results[0]
        scores = tf.concat([r[0] for r in results], 1)
        ids = tf.concat([r[1] for r in results], 1)
        if not weight_table.contiguous:
            # Shards interleave ids ("mod"): order candidates by id so that
            # top_k's lower-position rule breaks ties by the lower id.
            order = tf.argsort(ids, axis=1, stable=True)
            scores = tf.gather(scores, order, batch_dims=1)
            ids = tf.gather(ids, order, batch_dims=1)
        scores, best = tf.math.top_k(scores, k)
        return scores, tf.gather(ids, best, batch_dims=1)
