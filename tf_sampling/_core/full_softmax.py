"""Exact cross-entropies over every class: dense from logits, or chunked from the table.

Two ways to the same losses, side by side:

* **Dense**, :func:`full_cross_entropy`: from ``[n, num_classes]`` logits
  already computed (TF's own ops on them, targets from
  :func:`target_distribution`).
* **Chunked**, :func:`full_softmax_cross_entropy` and
  :func:`full_sigmoid_cross_entropy` (and, with the rank of the first true
  class, :func:`full_softmax_cross_entropy_and_rank`): from the class table,
  in blocks of ``chunk_size`` classes (``class_blocks``), never holding the
  ``[n, num_classes]`` logits.

How the chunked losses run, one block ``z`` ``[n, size]`` at a time:

* **Forward** (:func:`_forward`): an objective (:class:`_Objective`) starts
  per-row running values, merges each block into them (the running
  log-sum-exp :func:`_logsumexp_merge` for softmax, a running sum for
  sigmoid) and finishes them into the losses. Blocks are visited in each
  shard's storage order: the losses are sums over classes, so only the true
  classes need the class order rule, and they are found by their
  (shard, row) position (``ShardLayout.locate``, once per call).
* **Backward** (:func:`_shard_gradient`, :func:`_block_gradient`): the
  custom gradient recomputes each block's logits rather than keeping them:
  three matmuls per block there, one in the forward pass.
* **Weight gradients are dense**, one ``[rows, dim]`` tensor per shard: every
  class has a nonzero softmax gradient, so ``tf.IndexedSlices`` would only add
  an index per row and a scatter in the optimizer. In graphs (``tf.function``,
  TF1) the backward writes each block into that tensor in place; eagerly it
  keeps the blocks and concatenates them (twice the gradient's size briefly).
* **One-shot path.** When every shard fits in one block, no loop is built:
  the logits are computed at once, and the loss keeps them for its gradient
  instead of recomputing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from tf_sampling._core import checks, class_blocks, label_sets, loss_args, xla
from tf_sampling._core.xla import in_xla_context

SOFTMAX = "softmax"
SIGMOID = "sigmoid"

# The losses' docstrings: the arguments every blocked function takes
# (class_blocks.COMMON_DOC) and the losses' own, each written once.
_LABELS_DOC = """
    labels: integer ``[batch_size, num_true]`` target classes, or floats
      holding whole numbers (cast; a fractional one is an error)
      (``[batch_size]`` accepted when ``num_true`` is 1). Variable counts:
      a ``tf.RaggedTensor`` ``[batch_size, (n_i)]`` (``n_i <= num_true``) or
      ``nn.label_set(padded, padding_id=..., mask=...)`` of width
      ``num_true``: each real label gets target ``1 / n_i``, padding none; a
      row without a label is an error unless ``allow_empty`` (loss 0).
    """
_CLASSES_DOC = """
    num_classes: int, number of classes.
    num_true: int, number of target classes per example.
    """
_LABEL_ERRORS_DOC = """
    tf.errors.InvalidArgumentError: at run time for labels outside
      ``[0, num_classes)`` (under ``jit_compile=True``, where XLA drops
      asserts, their rows get a NaN loss and NaN gradients instead).
    """
_LOSS_DOC = {
    "arguments": class_blocks.doc_piece(
        class_blocks.COMMON_DOC["tables"],
        _LABELS_DOC,
        class_blocks.COMMON_DOC["inputs"],
        _CLASSES_DOC,
        class_blocks.COMMON_DOC["blocks"],
    ),
    "losses": """
        tf.Tensor: ``[batch_size]`` per-example losses, float32 (float64 when an
        operand is float64). Gradients reach ``inputs`` (its dtype), and each
        weight and bias shard as a dense tensor of its shape and dtype.
        """,
    "errors": class_blocks.doc_piece(class_blocks.COMMON_DOC["argument_errors"], _LABEL_ERRORS_DOC),
}


# ---------------------------------------------------------------------------
# Dense: from full logits.


def target_distribution(labels: tf.Tensor, num_true: int, num_classes: int) -> tf.Tensor:
    """Returns float32 ``[n, num_classes]`` targets: ``1 / num_true`` on each true class.

    The target the sampled losses train towards (the functional losses give
    each true logit the label ``1 / num_true``; a class listed twice counts
    twice), so the full losses measure the same objective over every class.
    The chunked losses build the same targets one block at a time
    (:func:`_block_targets`).

    Args:
      labels: int64 ``[n, num_true]``.
      num_true: int.
      num_classes: int.
    """
    hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
    return tf.reduce_sum(hot, axis=1) / float(num_true)


def full_cross_entropy(
    labels: tf.Tensor, logits: tf.Tensor, num_true: int, num_classes: int, objective: str
) -> tf.Tensor:
    """Exact loss over all classes, per row, from the full logits.

    The dense twin of :func:`full_softmax_cross_entropy` (``"softmax"``) and
    :func:`full_sigmoid_cross_entropy` (``"sigmoid"``), for logits that are
    already there.

    Args:
      labels: int64 ``[n, num_true]``, or a variable count per row (a
        ``tf.RaggedTensor`` or ``LabelSet`` of width ``num_true``): each real
        label gets target ``1 / n_i``, as in the chunked losses (a full row
        gives the fixed path's result bit for bit).
      logits: float ``[n, num_classes]`` full logits.
      num_true: int.
      num_classes: int.
      objective: ``"softmax"`` -- softmax cross-entropy, what sampled softmax
        (and TAPAS) estimate; ``"sigmoid"`` -- sum over classes of the sigmoid
        cross-entropy, NCE's full counterpart (TensorFlow's documented recipe).

    Returns:
      tf.Tensor: float32 ``[n]``.

    Raises:
      ValueError: as ``label_sets.resolve`` (a ``padding_id`` inside
        ``[0, num_classes)``, another width than ``num_true``).
      tf.errors.InvalidArgumentError: (when run, for a label set) a row
        without a label unless ``allow_empty`` (under XLA its loss is NaN),
        a real label outside ``[0, num_classes)``.
    """
    if objective not in (SOFTMAX, SIGMOID):
        raise ValueError(f"`objective` must be {SOFTMAX!r} or {SIGMOID!r}, got {objective!r}.")
    resolved = None
    if label_sets.is_label_set(labels):
        resolved = label_sets.resolve(labels, num_true, num_classes)
        # Padded slots hold the row's first real label: range-checked with the rest.
        labels = loss_args.normalize_labels(resolved.ids, num_true, num_classes)
    logits = tf.cast(logits, tf.float32)
    if objective == SOFTMAX and num_true == 1:
        # One slot: every row is full (or an allowed empty row, set to 0 below).
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 0], logits=logits)
    else:
        if resolved is None:
            targets = target_distribution(labels, num_true, num_classes)
        else:
            hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
            # The padded slots' copies take no mass; a full row sums and divides as above.
            real = tf.cast(resolved.mask, tf.float32)[:, :, tf.newaxis]
            count = tf.where(resolved.empty, tf.ones([], tf.float32), resolved.count)
            targets = tf.reduce_sum(hot * real, axis=1) / tf.expand_dims(count, 1)
        if objective == SOFTMAX:
            losses = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        else:
            per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
            losses = tf.reduce_sum(per_class, axis=1)
    if resolved is None:
        return losses
    # An allowed empty row: loss 0, no gradient; one that was not allowed
    # (only reachable under XLA, which drops the assert): NaN.
    losses = tf.where(
        label_sets.unlabeled_rows(resolved), tf.constant(float("nan"), tf.float32), losses
    )
    return tf.where(resolved.empty, tf.zeros([], tf.float32), losses)


# ---------------------------------------------------------------------------
# Chunked: the class table in blocks.


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


@dataclasses.dataclass(frozen=True)
class _Blocks:
    """What every block of one loss call reads.

    Attributes:
      x: ``[n, dim]`` inputs in ``dtype``.
      w_shards: the weight shards as read, ``[rows_k, dim]`` each.
      b_shards: the bias shards as read, ``[rows_k]`` each.
      label_shard: int32 ``[n, num_true]``, the shard of each label.
      label_row: int64 ``[n, num_true]``, its row in that shard.
      chunk: int, rows per block.
      dtype: the compute dtype.
      inv_true: float, ``1 / num_true``: the target of each true class; for
        variable-count labels ``[n, 1]`` ``1 / n_i`` (0 in an allowed empty row).
      mask: Optional bool ``[n, num_true]``, the real labels (variable counts):
        a padded slot is never a hit.
      count: Optional ``[n]`` ``n_i`` (1 in an empty row), with ``mask``.
    """

    x: tf.Tensor
    w_shards: tuple
    b_shards: tuple
    label_shard: tf.Tensor
    label_row: tf.Tensor
    chunk: int
    dtype: tf.DType
    inv_true: float | tf.Tensor
    mask: tf.Tensor | None = None
    count: tf.Tensor | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        """Rows of each shard."""
        return tuple(int(w.shape[0]) for w in self.w_shards)

    def logits(self, x, shard: int, start, size: int) -> tuple[tf.Tensor, tf.Tensor]:
        """``[n, size]`` logits of a block of ``shard`` and its ``[size, dim]`` weights."""
        return class_blocks.block_logits(
            x, self.w_shards[shard], self.b_shards[shard], start, size, self.dtype
        )

    def labels_in(
        self, shard: int, start, size: int, real_only: bool = True
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Which labels fall in the block, and their columns in it (0 where not).

        With ``real_only`` (the targets), a padded slot is never a hit.

        Returns:
          tuple: bool ``[n, num_true]`` hits and int32 ``[n, num_true]`` columns.
        """
        offset = self.label_row - tf.cast(start, tf.int64)
        # tf.equal: `==` on tensors is identity, not elementwise, in TF1 graphs.
        hit = tf.equal(self.label_shard, shard) & (offset >= 0) & (offset < size)
        if real_only and self.mask is not None:
            hit = hit & self.mask
        return hit, tf.cast(tf.where(hit, offset, 0), tf.int32)


# The objectives: per-row running values (``start``), what one block of logits
# ``z`` ``[n, size]`` adds to them (``merge``; ``hit`` and ``cols``, bool and
# int32 ``[n, num_true]``, say where the labels fall in it, see
# ``_Blocks.labels_in``), the ``[n]`` losses they end in (``finish``) and
# ``d loss / d z`` before the targets (``probabilities``; ``_block_gradient``
# subtracts the targets).


def _softmax_start(n, labels: tf.Tensor, dtype) -> tuple:
    """Running maximum and sum ``[n]``, and the true logits ``[n, num_true]``.

    The maximum starts at the lowest finite value, not -inf: a block of only
    -inf logits (a masked range of classes) then adds
    ``exp(-inf - lowest) = 0``, where ``-inf - -inf`` would be NaN.
    """
    return (
        tf.fill([n], tf.constant(dtype.min, dtype)),
        tf.zeros([n], dtype),
        tf.zeros(tf.shape(labels), dtype),
    )


def _logsumexp_merge(state: tuple, z, hit, cols, inv_true: float) -> tuple:
    """Merges a block into the running log-sum-exp, and keeps its true logits.

    Each true logit is kept as it is (each lies in exactly one block) and
    averaged only once the maximum is known (:func:`_softmax_finish`).
    """
    del inv_true  # The targets enter at the end, as a mean.
    running_max, running_sum, true_logits = state
    true_logits = tf.where(hit, tf.gather(z, cols, batch_dims=1), true_logits)
    new_max = tf.maximum(running_max, tf.reduce_max(z, 1))
    running_sum = running_sum * tf.exp(running_max - new_max) + tf.reduce_sum(
        tf.exp(z - tf.expand_dims(new_max, 1)), 1
    )
    return new_max, running_sum, true_logits


def _softmax_finish(state: tuple, blocks: _Blocks) -> tuple[tf.Tensor, tuple]:
    """Losses ``[n]``, and ``(row_max, total)`` ``[n]`` for the backward pass.

    The mean of the true logits minus the maximum (all <= 0): a true logit
    equal to the maximum loses no digits to cancellation, and true logits
    near FLT_MAX cannot overflow their sum. Variable counts: the mean of the
    real ones (sum over ``n_i``, as ``reduce_mean`` divides a full row).
    """
    row_max, total, true_logits = state
    shifted_true = true_logits - tf.expand_dims(row_max, 1)
    if blocks.mask is None:
        true_mean = tf.reduce_mean(shifted_true, 1)
    else:
        real_sum = tf.reduce_sum(
            tf.where(blocks.mask, shifted_true, tf.zeros([], shifted_true.dtype)), 1
        )
        true_mean = real_sum / blocks.count
    return tf.math.log(total) - true_mean, (row_max, total)


def _softmax_probabilities(z, stats: tuple) -> tf.Tensor:
    """``[n, size]`` softmax of a block's logits over all classes.

    ``exp(z - max) / sum`` rather than ``exp(z - log_normalizer)``: near
    FLT_MAX, ``max + log(sum)`` rounds back to ``max``.
    """
    row_max, total = stats
    return tf.exp(z - tf.expand_dims(row_max, 1)) * tf.expand_dims(1.0 / total, 1)


def _sigmoid_start(n, labels: tf.Tensor, dtype) -> tuple:
    """The running sum ``[n]`` of per-class losses."""
    del labels
    return (tf.zeros([n], dtype),)


def _sigmoid_merge(state: tuple, z, hit, cols, inv_true: float) -> tuple:
    """Adds a block's per-class sigmoid cross-entropies to the running sum.

    Per class, then summed: ``softplus(z) - target * z`` summed over the
    classes first would overflow (to NaN) where the exact loss is finite,
    e.g. two true logits near FLT_MAX. TF's form
    ``relu(z) - t * z + log1p(exp(-|z|))``, with ``t * z`` only where
    ``t > 0``: ``0 * -inf`` would make a masked (-inf) class NaN.
    """
    dtype = z.dtype
    targets = _block_targets(hit, cols, z, tf.cast(inv_true, dtype))
    true_part = tf.where(targets > 0, targets * z, tf.zeros([], dtype))
    per_class = tf.nn.relu(z) - true_part + tf.math.log1p(tf.exp(-tf.abs(z)))
    return (state[0] + tf.reduce_sum(per_class, 1),)


def _sigmoid_finish(state: tuple, blocks: _Blocks) -> tuple[tf.Tensor, tuple]:
    """Losses ``[n]``; the backward pass needs nothing more."""
    del blocks
    return state[0], ()


def _sigmoid_probabilities(z, stats: tuple) -> tf.Tensor:
    """``[n, size]`` sigmoid of a block's logits."""
    del stats
    return tf.sigmoid(z)


class _Objective(NamedTuple):
    """The four pieces that make a chunked loss (see the functions above)."""

    start: Callable
    merge: Callable
    finish: Callable
    probabilities: Callable


_OBJECTIVES = {
    SOFTMAX: _Objective(_softmax_start, _logsumexp_merge, _softmax_finish, _softmax_probabilities),
    SIGMOID: _Objective(_sigmoid_start, _sigmoid_merge, _sigmoid_finish, _sigmoid_probabilities),
}


def _first_true_logit(blocks: _Blocks, weight_table, bias_table, first: tf.Tensor) -> tf.Tensor:
    """``[n]`` logit of each row's first true class ``first`` ``[n]``, from its own row (no gradient)."""
    rows = dataclasses.replace(weight_table, shards=blocks.w_shards).gather(first)
    bias = dataclasses.replace(bias_table, shards=blocks.b_shards).gather(first)
    logit = tf.reduce_sum(blocks.x * tf.cast(rows, blocks.dtype), 1) + tf.cast(bias, blocks.dtype)
    return tf.stop_gradient(logit)


def _count_above(z, hit, cols, size: int, reference, above) -> tf.Tensor:
    """``above`` ``[n]`` plus the block's logits strictly above ``reference`` ``[n]``.

    The first true class's own column is left out, so rounding between its
    two products (block and row) cannot count it.
    """
    own = hit[:, :1] & tf.equal(tf.range(size)[tf.newaxis], cols[:, :1])
    higher = (z > tf.expand_dims(reference, 1)) & tf.logical_not(own)
    return above + tf.reduce_sum(tf.cast(higher, tf.int64), 1)


def _forward(blocks: _Blocks, objective: _Objective, reference, one_shot: bool) -> tuple:
    """Runs every block of every shard through ``objective.merge`` (and the rank count).

    Args:
      blocks: the call's :class:`_Blocks`.
      objective: the loss's :class:`_Objective`.
      reference: Optional ``[n]`` first true logits: count the classes above.
      one_shot: whether every shard is one block (its logits are kept).

    Returns:
      tuple: ``(state, above, kept)``: the objective's final running values,
      int64 ``[n]`` classes above ``reference`` (None without it), and the
      one-shot path's logits, ``[n, rows_k]`` per shard (else empty).
    """
    n = tf.shape(blocks.x)[0]
    kept = []

    def step(x, shard, start, size, state):
        z, _ = blocks.logits(x, shard, start, size)
        if one_shot:
            kept.append(z)
        hit, cols = blocks.labels_in(shard, start, size)
        if reference is None:
            return objective.merge(state, z, hit, cols, blocks.inv_true)
        # The first slot's own column, padded or not (it holds the first real label).
        own_hit, own_cols = blocks.labels_in(shard, start, size, real_only=False)
        above = _count_above(z, own_hit, own_cols, size, reference, state[-1])
        return (*objective.merge(state[:-1], z, hit, cols, blocks.inv_true), above)

    state = objective.start(n, blocks.label_row, blocks.dtype)
    if reference is not None:
        state = (*state, tf.zeros([n], tf.int64))
    for shard, rows in enumerate(blocks.sizes):
        (x,) = class_blocks.after((blocks.x,), state if shard else ())
        state = class_blocks.scan_blocks(
            rows,
            blocks.chunk,
            lambda start, size, st, x=x, shard=shard: step(x, shard, start, size, st),
            state,
        )
    if reference is None:
        return state, None, kept
    return state[:-1], state[-1], kept


def _block_gradient(blocks: _Blocks, probabilities, up_column, shard, start, size, dx, z=None):
    """One block's share of the gradient.

    Args:
      blocks: the call's :class:`_Blocks`.
      probabilities: callable, block logits ``[n, size]`` -> ``d loss / d z``
        before the targets, ``[n, size]``.
      up_column: ``[n, 1]`` upstream gradient of the losses.
      shard, start, size: the block (int, int32 scalar, int).
      dx: ``[n, dim]`` the inputs' gradient so far.
      z: Optional ``[n, size]`` logits kept by the forward pass (else recomputed).

    Returns:
      tuple: ``dx`` plus the block's share ``[n, dim]``, and the block's
      ``dw`` ``[size, dim]`` and ``db`` ``[size]``, in the compute dtype.
    """
    # Gated on the running dx: one shard's blocks after another's.
    (x,) = class_blocks.after((blocks.x,), (dx,))
    if z is None:
        z, w = blocks.logits(x, shard, start, size)
    else:
        w = tf.cast(blocks.w_shards[shard], blocks.dtype)
    probs = probabilities(z)
    hit, cols = blocks.labels_in(shard, start, size)
    targets = _block_targets(hit, cols, z, up_column * blocks.inv_true)
    # d loss / d logit = (probability - target) * upstream.
    grad_logits = probs * up_column - targets
    dw = tf.matmul(grad_logits, x, transpose_a=True)
    db = tf.reduce_sum(grad_logits, 0)
    dx_new = dx + tf.matmul(grad_logits, w)
    # Static shapes kept (e.g. a batch of 0): the loop carries dx.
    dx_new.set_shape(dx.shape)
    return dx_new, dw, db


def _shard_gradient(blocks: _Blocks, block_gradient, shard: int, dx, kept_z=None) -> tuple:
    """One shard's gradients, block by block.

    Args:
      blocks: the call's :class:`_Blocks`.
      block_gradient: :func:`_block_gradient` bound to the call's pieces:
        ``(shard, start, size, dx, z=None) -> (dx, dw, db)``.
      shard: int.
      dx: ``[n, dim]`` the inputs' gradient so far.
      kept_z: Optional ``[n, rows]`` logits of the one-shot path.

    Returns:
      tuple: ``dx`` with the shard's share, and the shard's dense ``dw``
      ``[rows, dim]`` and ``db`` ``[rows]`` in the shards' dtypes.
    """
    rows = blocks.sizes[shard]
    w_dtype, b_dtype = blocks.w_shards[shard].dtype, blocks.b_shards[shard].dtype
    if kept_z is not None:
        dx, dw, db = block_gradient(shard, 0, rows, dx, kept_z)
        return dx, tf.cast(dw, w_dtype), tf.cast(db, b_dtype)
    if tf.executing_eagerly():
        # Eager tensors cannot be updated in place: keep the blocks.
        w_blocks, b_blocks = [], []

        def eager_step(start, size, state):
            dx_new, dw, db = block_gradient(shard, start, size, state[0])
            w_blocks.append(tf.cast(dw, w_dtype))
            b_blocks.append(tf.cast(db, b_dtype))
            return (dx_new,)

        (dx,) = class_blocks.scan_blocks(rows, blocks.chunk, eager_step, (dx,))
        return dx, tf.concat(w_blocks, 0), tf.concat(b_blocks, 0)

    def graph_step(start, size, state):
        dx_new, dw, db = block_gradient(shard, start, size, state[0])
        return (
            dx_new,
            _write_rows(state[1], start, tf.cast(dw, w_dtype)),
            _write_rows(state[2], start, tf.cast(db, b_dtype)),
        )

    buffers = (
        _row_buffer(blocks.w_shards[shard].shape, w_dtype),
        _row_buffer(blocks.b_shards[shard].shape, b_dtype),
    )
    return class_blocks.scan_blocks(rows, blocks.chunk, graph_step, (dx, *buffers))


def _chunked_loss(
    objective: str,
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
    """The shared body of the chunked losses (see their docstrings).

    Checks the arguments, then runs :func:`_forward` under a custom gradient
    whose backward pass runs :func:`_shard_gradient` over the shards.

    With ``with_rank``, also returns, from the same pass over the blocks, the
    int64 ``[n]`` number of classes whose logit is strictly above the first
    true class's (its rank; top-``k`` accuracy is ``rank < k``, ties counted
    in, as ``tf.math.in_top_k`` does). It has no gradient.
    """
    num_true = checks.check_int(num_true, "num_true")
    inputs, weight_table, bias_table, dtype, chunk, num_classes = class_blocks.prepare(
        weights, biases, inputs, num_classes, partition_strategy, chunk_size
    )
    batch_size = loss_args.static_or_dynamic_batch_size(inputs)
    resolved = None
    if label_sets.is_label_set(labels):
        # Padded slots hold the row's first real label (range-checked with
        # the rest); the mask keeps them out of the targets.
        resolved = label_sets.resolve(labels, num_true, num_classes, batch_size, dtype)
        labels = resolved.ids
    labels = loss_args.normalize_labels(labels, num_true, num_classes, batch_size)
    bad_rows = None
    if in_xla_context():
        # XLA drops the range assert: a row with a bad label gets a NaN loss
        # (and NaN gradients) instead of a plausible number, and the lookups
        # read class 0 for its bad labels.
        bad_rows = xla.out_of_range_rows(labels, num_classes)
        inputs = xla.nan_rows(inputs, bad_rows)
        labels = tf.where((labels < 0) | (labels >= num_classes), tf.zeros([], tf.int64), labels)
    label_shard, label_row = weight_table.layout.locate(labels)
    one_shot = max(weight_table.sizes) <= chunk
    pieces = _OBJECTIVES[objective]
    num_shards = len(weight_table.shards)

    inv_true, mask, count = 1.0 / num_true, None, None
    if resolved is not None:
        mask = resolved.mask
        count = tf.where(resolved.empty, tf.ones([], dtype), resolved.count)
        inv_true = tf.expand_dims(tf.where(resolved.empty, tf.zeros([], dtype), 1.0 / count), 1)

    @tf.custom_gradient
    def loss_fn(x, *tables):
        blocks = _Blocks(
            tf.cast(x, dtype),
            tables[:num_shards],
            tables[num_shards:],
            label_shard,
            label_row,
            chunk,
            dtype,
            inv_true,
            mask,
            count,
        )
        reference = None
        if with_rank:
            reference = _first_true_logit(blocks, weight_table, bias_table, labels[:, 0])
        state, above, kept = _forward(blocks, pieces, reference, one_shot)
        losses, stats = pieces.finish(state, blocks)
        if resolved is not None:
            # An allowed empty row: loss 0 and no gradient.
            losses = tf.where(resolved.empty, tf.zeros([], dtype), losses)

        def backward(upstream, *_rank_upstream):
            up_column = tf.expand_dims(tf.cast(upstream, dtype), 1)
            if resolved is not None:
                up_column = tf.where(
                    tf.expand_dims(resolved.empty, 1), tf.zeros([], dtype), up_column
                )
            probabilities = functools.partial(pieces.probabilities, stats=stats)
            block_gradient = functools.partial(_block_gradient, blocks, probabilities, up_column)
            dx = tf.zeros_like(blocks.x)
            dws, dbs = [], []
            for shard in range(num_shards):
                dx, dw, db = _shard_gradient(
                    blocks, block_gradient, shard, dx, kept[shard] if kept else None
                )
                dws.append(dw)
                dbs.append(db)
            return [tf.cast(dx, x.dtype), *dws, *dbs]

        if not with_rank:
            return losses, backward
        # A row whose loss is NaN (NaN weights or inputs, or a bad label
        # under XLA) has no rank: never counted as a top-k hit.
        undefined = tf.math.is_nan(losses) | tf.math.is_nan(reference)
        rank = tf.where(undefined, tf.constant(num_classes, tf.int64), above)
        return (losses, rank), backward

    w_read = [class_blocks.read(s) for s in weight_table.shards]
    b_read = [class_blocks.read(s) for s in bias_table.shards]
    out = loss_fn(inputs, *w_read, *b_read)
    if resolved is not None and in_xla_context():
        # XLA drops the assert: a row with no label that was not allowed is NaN.
        unlabeled = label_sets.unlabeled_rows(resolved)
        bad_rows = unlabeled if bad_rows is None else bad_rows | unlabeled
    if bad_rows is not None:
        # NaN whatever the arithmetic made of the NaN inputs.
        losses = xla.nan_rows(out[0] if with_rank else out, bad_rows)
        return (losses, out[1]) if with_rank else losses
    return out


@class_blocks.fill_doc(_LOSS_DOC)
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
    gradient matmuls (4 matmuls per step against TensorFlow's 3). The
    automatic ``chunk_size`` at batch 1024: one block up to 32,768 classes,
    8192 classes above.

    Args:
      {arguments}

    Returns:
      {losses}

    Raises:
      {errors}
    """
    with tf.name_scope(name or "full_softmax_cross_entropy"):
        return _chunked_loss(
            SOFTMAX,
            weights,
            biases,
            labels,
            inputs,
            num_classes,
            num_true,
            partition_strategy,
            chunk_size,
        )


@class_blocks.fill_doc(_LOSS_DOC)
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
      {arguments}

    Returns:
      {losses}

    Raises:
      {errors}
    """
    with tf.name_scope(name or "full_sigmoid_cross_entropy"):
        return _chunked_loss(
            SIGMOID,
            weights,
            biases,
            labels,
            inputs,
            num_classes,
            num_true,
            partition_strategy,
            chunk_size,
        )


@class_blocks.fill_doc(_LOSS_DOC)
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
      {arguments}

    Returns:
      tuple: ``(losses, rank)``: float32 ``[batch_size]`` per-example losses,
      with their gradient, and int64 ``[batch_size]``, the number of classes
      whose logit is strictly above that of the first true class (ties count
      as not above, as in ``tf.math.in_top_k``; the first true logit is
      computed from its own row, so a logit within rounding of it may count
      either way). The rank has no gradient; a row whose loss is NaN gets the
      rank ``num_classes``.

    Raises:
      {errors}
    """
    with tf.name_scope(name or "full_softmax_cross_entropy_and_rank"):
        return _chunked_loss(
            SOFTMAX,
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
