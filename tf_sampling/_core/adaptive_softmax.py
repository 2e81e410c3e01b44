"""Adaptive softmax (Grave et al. 2017, arXiv 1609.04309): an exact softmax, cheaper.

The classes (ids sorted by decreasing frequency) are split by ``cutoffs`` into
a shortlist ``[0, c_0)`` and tail clusters ``[c_i, c_{i+1})`` (see
``adaptive_layout``). The distribution is a two-level one, normalized exactly:

* the **head** scores the shortlist and one logit per tail cluster:
  ``head_logits = inputs @ head_weights^T + head_biases``, ``[n, c_0 + m]``;
* tail cluster ``i`` scores its classes from a narrower projection:
  ``tail_logits_i = (inputs @ tail_projections[i]) @ tail_weights[i]^T +
  tail_biases[i]``, ``[n, size_i]``;
* ``log p(c) = log_softmax(head)[c]`` for a shortlist class, and
  ``log_softmax(head)[c_0 + i] + log_softmax(tail_i)[c - start_i]`` for a
  class of cluster ``i``.

Parameter shapes (``dim`` the input width, ``p_i`` cluster ``i``'s projection
width): ``head_weights [c_0 + m, dim]``, ``head_biases [c_0 + m]`` or None,
``tail_projections[i] [dim, p_i]``, ``tail_weights[i] [size_i, p_i]``,
``tail_biases[i] [size_i]`` or None. Class tables are ``[rows, width]`` as
everywhere in the package. Without cutoffs the head is ``[num_classes, dim]``
and this is the plain full softmax.

Costs: the loss computes the head for every row and each tail cluster only
for the rows with a target in it (rows gathered per cluster, as PyTorch's
``AdaptiveLogSoftmaxWithLoss`` does). Under XLA, where shapes must be static,
each tail cluster is computed for every row and masked instead: the same
numbers, at the cost of ``log_prob``. A variable number of labels per
example (ragged or ``label_set``) keeps this: the head's log-softmax once per
example, each tail cluster's once per example with a label in it, each
label's log-probability gathered from them. ``adaptive_top_k`` merges the head's
top-k with each cluster's (each shifted by its cluster's log-probability),
which is exact; a large part is scanned in class blocks
(``full_top_k``) so no ``[n, num_classes]`` tensor is held.

Everything is computed in float32 (float64 when an operand is float64),
whatever the dtype of the inputs and parameters (mixed precision).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tf_sampling._core import adaptive_layout, checks, label_sets, loss_args, xla
from tf_sampling._core.class_blocks import auto_chunk_size
from tf_sampling._core.full_softmax import full_softmax_cross_entropy
from tf_sampling._core.full_top_k import full_top_k
from tf_sampling._core.sampled_logits import compute_dtype


class _Parts(NamedTuple):
    """Checked parameters, as float tensors of the compute dtype."""

    cutoffs: tuple
    num_classes: int
    bounds: list
    head_weights: tf.Tensor
    head_biases: tf.Tensor | None
    projections: list
    tail_weights: list
    tail_biases: list
    inputs: tf.Tensor
    dtype: tf.DType

    @property
    def shortlist(self) -> int:
        return self.cutoffs[0] if self.cutoffs else self.num_classes


def _matrix(value, name: str, shape: list) -> tf.Tensor:
    """``value`` as a floating tensor of the (static) ``shape``, None entries free."""
    value = tf.convert_to_tensor(checks.check_dense(value, name))
    if not value.dtype.is_floating:
        raise TypeError(f"`{name}` must be floating-point, got dtype {value.dtype.name}.")
    if value.shape.rank is None or not value.shape.is_compatible_with(shape):
        wanted = [d if d is not None else "?" for d in shape]
        raise ValueError(f"`{name}` must have shape {wanted}, got shape {value.shape}.")
    return value


def _per_cluster(values, name: str, count: int, optional: bool = False) -> list:
    """``values`` as a list of one entry per tail cluster."""
    if values is None and (optional or count == 0):
        return [None] * count
    if not isinstance(values, list | tuple):
        raise TypeError(
            f"`{name}` must be a list with one tensor per tail cluster ({count}), got "
            f"{type(values).__name__}."
        )
    if len(values) != count:
        raise ValueError(
            f"`{name}` must hold one tensor per tail cluster, {count} for these cutoffs, "
            f"got {len(values)}."
        )
    return list(values)


def _prepare(
    head_weights,
    head_biases,
    tail_projections,
    tail_weights,
    tail_biases,
    inputs,
    cutoffs,
    num_classes,
) -> _Parts:
    """Checks every argument against the cluster layout; see the public functions."""
    num_classes = checks.check_int(num_classes, "num_classes", 2)
    cutoffs = adaptive_layout.check_cutoffs(cutoffs, num_classes)
    bounds = adaptive_layout.cluster_bounds(cutoffs, num_classes)
    rows = adaptive_layout.head_size(cutoffs, num_classes)
    inputs = loss_args.check_inputs(inputs)
    head_w = _matrix(head_weights, "head_weights", [rows, None])
    dim = head_w.shape[1]
    if dim is None:
        raise ValueError(f"`head_weights` must have a static dim, got shape {head_w.shape}.")
    loss_args.check_inputs_dim(inputs, dim)
    head_b = None if head_biases is None else _matrix(head_biases, "head_biases", [rows])
    m = len(bounds)
    projections = _per_cluster(tail_projections, "tail_projections", m)
    tables = _per_cluster(tail_weights, "tail_weights", m)
    biases = _per_cluster(tail_biases, "tail_biases", m, optional=True)
    dtypes = [inputs.dtype, head_w.dtype] + ([head_b.dtype] if head_b is not None else [])
    checked = ([], [], [])
    for i, (start, stop) in enumerate(bounds):
        proj = _matrix(projections[i], f"tail_projections[{i}]", [dim, None])
        width = proj.shape[1]
        table = _matrix(tables[i], f"tail_weights[{i}]", [stop - start, width])
        bias = None
        if biases[i] is not None:
            bias = _matrix(biases[i], f"tail_biases[{i}]", [stop - start])
        for target, value in zip(checked, (proj, table, bias), strict=True):
            target.append(value)
        dtypes += [t.dtype for t in (proj, table, bias) if t is not None]
    dtype = compute_dtype(*dtypes)

    def cast(t):
        return None if t is None else tf.cast(t, dtype)

    return _Parts(
        cutoffs=cutoffs,
        num_classes=num_classes,
        bounds=bounds,
        head_weights=cast(head_w),
        head_biases=cast(head_b),
        projections=[cast(t) for t in checked[0]],
        tail_weights=[cast(t) for t in checked[1]],
        tail_biases=[cast(t) for t in checked[2]],
        inputs=cast(inputs),
        dtype=dtype,
    )


def _affine(x: tf.Tensor, weights: tf.Tensor, biases: tf.Tensor | None) -> tf.Tensor:
    z = tf.matmul(x, weights, transpose_b=True)
    return z if biases is None else tf.nn.bias_add(z, biases)


def _head_logits(parts: _Parts, x: tf.Tensor) -> tf.Tensor:
    return _affine(x, parts.head_weights, parts.head_biases)


def _tail_logits(parts: _Parts, i: int, x: tf.Tensor) -> tf.Tensor:
    hidden = tf.matmul(x, parts.projections[i])
    return _affine(hidden, parts.tail_weights[i], parts.tail_biases[i])


def adaptive_log_softmax(
    head_weights,
    head_biases,
    tail_projections,
    tail_weights,
    tail_biases,
    inputs,
    cutoffs,
    num_classes,
    name="adaptive_log_softmax",
) -> tf.Tensor:
    """Exact log-probability of every class under an adaptive softmax.

    Args:
      head_weights: float ``[c_0 + m, dim]`` (``[num_classes, dim]`` without
        cutoffs): rows of the shortlist classes, then one per tail cluster.
      head_biases: float ``[c_0 + m]``, or None (no head bias).
      tail_projections: list of ``m`` float ``[dim, p_i]`` projections (None
        or ``[]`` without cutoffs).
      tail_weights: list of ``m`` float ``[size_i, p_i]`` class tables.
      tail_biases: None, or a list of ``m`` float ``[size_i]`` (or None) biases.
      inputs: float ``[batch_size, dim]`` activations.
      cutoffs: None, or ``m`` increasing ints in ``[1, num_classes - 1]``.
      num_classes: int, number of classes.
      name: Name scope of the operation.

    Returns:
      tf.Tensor: float32 (float64 when an operand is float64)
      ``[batch_size, num_classes]`` log-probabilities in class order; each row's
      ``exp`` sums to 1. Differentiable in every parameter and ``inputs``.

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received.
    """
    with tf.name_scope(name or "adaptive_log_softmax"):
        parts = _prepare(
            head_weights,
            head_biases,
            tail_projections,
            tail_weights,
            tail_biases,
            inputs,
            cutoffs,
            num_classes,
        )
        head = tf.nn.log_softmax(_head_logits(parts, parts.inputs))
        if not parts.bounds:
            return head
        s = parts.shortlist
        pieces = [head[:, :s]]
        for i in range(len(parts.bounds)):
            local = tf.nn.log_softmax(_tail_logits(parts, i, parts.inputs))
            pieces.append(local + head[:, s + i : s + i + 1])
        return tf.concat(pieces, 1)


def adaptive_softmax_loss(
    head_weights,
    head_biases,
    tail_projections,
    tail_weights,
    tail_biases,
    labels,
    inputs,
    cutoffs,
    num_classes,
    name="adaptive_softmax_loss",
) -> tf.Tensor:
    """Per-example negative log-likelihood ``-log p(label)`` under an adaptive softmax.

    Exact (equal to ``-adaptive_log_softmax(...)[label]``), computing the head
    for every example and each tail cluster only for the examples with a
    label in it (under XLA: for every example, masked).

    A variable number of labels per example: example ``i``'s ``n_i`` labels
    share the target mass, ``loss_i = -(1 / n_i) * sum_k log p(y_ik)`` (the
    ``num_true`` rule of the other losses, per example). No ``num_true``: a
    ragged batch is as wide as its longest row, a ``label_set`` as its own
    width. A row with no label is an ``InvalidArgumentError`` unless
    ``label_set(..., allow_empty=True)``, which gives it loss and gradient 0
    (under XLA, which drops asserts, such a row's loss is NaN).

    Args:
      head_weights, head_biases, tail_projections, tail_weights, tail_biases:
        As :func:`adaptive_log_softmax`.
      labels: int32/int64 ``[batch_size]`` (or ``[batch_size, 1]``) class ids
        in ``[0, num_classes)``; or a variable number per example: a
        ``tf.RaggedTensor`` ``[batch_size, (n_i)]`` (not XLA-compilable) or a
        ``tf_sampling.nn.label_set`` of padded ``[batch_size, max_true]`` ids
        (fixed shapes, compiles under ``jit_compile=True``).
      inputs: float ``[batch_size, dim]`` activations.
      cutoffs: None, or ``m`` increasing ints in ``[1, num_classes - 1]``.
      num_classes: int, number of classes.
      name: Name scope of the operation.

    Returns:
      tf.Tensor: float32 (float64 when an operand is float64) ``[batch_size]``
      losses, with gradients to ``inputs`` and every parameter (zero for the
      tail clusters no label of the batch falls in).

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received (a ``padding_id`` inside ``[0, num_classes)``, a
        batch size other than ``inputs``').
      tf.errors.InvalidArgumentError: at run time for labels outside
        ``[0, num_classes)``, or a row with no label (unless allowed).
    """
    with tf.name_scope(name or "adaptive_softmax_loss"):
        parts = _prepare(
            head_weights,
            head_biases,
            tail_projections,
            tail_weights,
            tail_biases,
            inputs,
            cutoffs,
            num_classes,
        )
        batch_size = loss_args.static_or_dynamic_batch_size(parts.inputs)
        if label_sets.is_label_set(labels):
            return _label_set_loss(parts, labels, batch_size)
        labels = loss_args.normalize_labels(labels, 1, parts.num_classes, batch_size)[:, 0]
        return _single_label_loss(parts, labels)


def _cluster_of(parts: _Parts, labels: tf.Tensor) -> tf.Tensor:
    """int64 like ``labels``: 0 for the shortlist, ``i + 1`` for tail cluster ``i``."""
    cluster = tf.zeros_like(labels)
    for c in parts.cutoffs:
        cluster += tf.cast(labels >= c, tf.int64)
    return cluster


def _single_label_loss(parts: _Parts, labels: tf.Tensor) -> tf.Tensor:
    """``[batch_size]`` losses of one checked int64 label ``[batch_size]`` per row."""
    x = parts.inputs
    cluster = _cluster_of(parts, labels)
    head_target = tf.where(tf.equal(cluster, 0), labels, cluster + (parts.shortlist - 1))
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=head_target, logits=_head_logits(parts, x)
    )
    compiled = xla.in_xla_context()
    for i, (start, stop) in enumerate(parts.bounds):
        member = tf.equal(cluster, i + 1)
        if compiled:
            # Static shapes: every row, its loss kept where the label is here.
            local = tf.clip_by_value(labels - start, 0, stop - start - 1)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=local, logits=_tail_logits(parts, i, x)
            )
            loss += tf.where(member, nll, tf.zeros_like(nll))
        else:
            rows = tf.where(member)[:, 0]
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.gather(labels, rows) - start,
                logits=_tail_logits(parts, i, tf.gather(x, rows)),
            )
            loss += tf.scatter_nd(tf.expand_dims(rows, 1), nll, tf.shape(loss, out_type=tf.int64))
    return loss


def _resolve_label_set(
    labels, num_classes: int, batch_size, dtype: tf.DType
) -> label_sets.ResolvedLabels:
    """Ragged or ``LabelSet`` labels as int64 ids ``[batch_size, w]``, mask, ``n_i``, empty rows.

    ``w`` is the label set's width (a ragged batch's longest row), which may
    be known only at run time: each slot is resolved as a row of width 1
    (``label_sets.resolve``: the padding id's range, the ids' dtype), then
    the whole rows by ``label_sets.resolve_checked`` (counts, the no-label
    rule).
    """
    if isinstance(labels, tf.RaggedTensor):
        labels = label_sets.label_set(labels)  # zeros to the longest row, and its mask
    padded, mask = labels.labels, labels.mask
    if (
        padded.shape[0] is not None
        and isinstance(batch_size, int)
        and padded.shape[0] != batch_size
    ):
        raise ValueError(
            f"Argument `labels` must have the batch size of `inputs` ({batch_size}). Received: "
            f"labels.shape={padded.shape} (batch size {padded.shape[0]})"
        )
    shape = tf.shape(padded)
    slots = label_sets.resolve(
        label_sets.LabelSet(
            tf.reshape(padded, [-1, 1]),
            None if mask is None else tf.reshape(mask, [-1, 1]),
            labels.padding_id,
            True,
        ),
        1,
        num_classes,
    )
    ids = tf.reshape(loss_args.normalize_labels(slots.ids, 1, num_classes), shape)
    check = tf.debugging.assert_equal(
        shape[0],
        tf.cast(batch_size, shape.dtype),
        message="Argument `labels` must have the batch size of `inputs`",
    )
    with tf.control_dependencies([check]):
        ids = tf.identity(ids)
    return label_sets.resolve_checked(ids, tf.reshape(slots.mask, shape), labels.allow_empty, dtype)


def _label_set_loss(parts: _Parts, labels, batch_size) -> tf.Tensor:
    """``[batch_size]`` losses of a variable number of labels per row (ragged / ``LabelSet``)."""
    resolved = _resolve_label_set(labels, parts.num_classes, batch_size, parts.dtype)
    ids, real, dtype = resolved.ids, resolved.mask, parts.dtype
    zero = tf.zeros([], dtype)
    if ids.shape[1] == 1:
        # One slot: the single-label computation itself, so that full rows
        # give its numbers bit for bit; an empty row's slot holds class 0.
        loss = _single_label_loss(parts, ids[:, 0])
    else:
        x = parts.inputs
        cluster = _cluster_of(parts, ids)
        head_target = tf.where(tf.equal(cluster, 0), ids, cluster + (parts.shortlist - 1))
        # The head's log-softmax once per example, read at each label.
        head = tf.nn.log_softmax(_head_logits(parts, x))
        log_p = tf.gather(head, head_target, batch_dims=1)
        compiled = xla.in_xla_context()
        for i, (start, stop) in enumerate(parts.bounds):
            member = tf.equal(cluster, i + 1) & real
            local = tf.clip_by_value(ids - start, 0, stop - start - 1)
            if compiled:
                # Static shapes: every row, kept where a label is here.
                tail = tf.nn.log_softmax(_tail_logits(parts, i, x))
                log_p += tf.where(member, tf.gather(tail, local, batch_dims=1), zero)
            else:
                # The rows with a label here, each once whatever its count there.
                rows = tf.where(tf.reduce_any(member, 1))[:, 0]
                tail = tf.nn.log_softmax(_tail_logits(parts, i, tf.gather(x, rows)))
                picked = tf.gather(tail, tf.gather(local, rows), batch_dims=1)
                picked = tf.where(tf.gather(member, rows), picked, zero)
                log_p += tf.scatter_nd(
                    tf.expand_dims(rows, 1), picked, tf.shape(log_p, out_type=tf.int64)
                )
        safe_count = tf.where(resolved.empty, tf.ones([], dtype), resolved.count)
        loss = -tf.reduce_sum(tf.where(real, log_p, zero), 1) / safe_count
    loss = tf.where(resolved.empty, zero, loss)
    if xla.in_xla_context():
        loss = xla.nan_rows(loss, label_sets.unlabeled_rows(resolved))
    return loss


def _part_top_k(x, weights, biases, k: int, chunk_size, dtype) -> tuple:
    """Top ``k`` logits of one table, their rows (int64) and its log-sum-exp, ``[n]``.

    One matmul when the table fits one block of ``chunk_size`` (default
    ``class_blocks.auto_chunk_size``); otherwise in blocks: the top-k by
    ``full_top_k`` and the log-sum-exp from ``full_softmax_cross_entropy``
    (the cross-entropy of row 0 plus its logit).
    """
    size = int(weights.shape[0])
    k = min(k, size)
    chunk = chunk_size or auto_chunk_size(x.shape[0], int(x.shape[1]), size)
    if chunk >= size:
        z = _affine(x, weights, biases)
        scores, ids = tf.math.top_k(z, k)
        return scores, tf.cast(ids, tf.int64), tf.reduce_logsumexp(z, 1)
    if biases is None:
        biases = tf.zeros([size], dtype)
    scores, ids = full_top_k(weights, biases, x, k, num_classes=size, chunk_size=chunk)
    first = tf.zeros(tf.shape(x)[:1], tf.int64)
    cross_entropy = full_softmax_cross_entropy(weights, biases, first, x, size, chunk_size=chunk)
    logit_0 = tf.reduce_sum(x * weights[0], 1) + biases[0]
    return scores, ids, cross_entropy + logit_0


def adaptive_top_k(
    head_weights,
    head_biases,
    tail_projections,
    tail_weights,
    tail_biases,
    inputs,
    k,
    cutoffs,
    num_classes,
    chunk_size=None,
    name="adaptive_top_k",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact top-``k`` classes by log-probability, without ``[n, num_classes]``.

    The same result as ``tf.math.top_k(adaptive_log_softmax(...), k)`` (ties
    go to the lower class id): the ``k`` best of the shortlist and of each
    tail cluster, each shifted by its cluster's log-probability, merged. A
    part larger than one block is scanned ``chunk_size`` classes at a time.

    Args:
      head_weights, head_biases, tail_projections, tail_weights, tail_biases:
        As :func:`adaptive_log_softmax`.
      inputs: float ``[batch_size, dim]`` activations.
      k: int in ``[1, num_classes]``.
      cutoffs: None, or ``m`` increasing ints in ``[1, num_classes - 1]``.
      num_classes: int, number of classes.
      chunk_size: Optional int, classes per block of a large part (default
        ``full_softmax_cross_entropy``'s automatic size).
      name: Name scope of the operation.

    Returns:
      tuple: ``(scores, ids)``, both ``[batch_size, k]``, best first: float32
      log-probabilities (float64 when an operand is float64) and int64 class
      ids. No gradient.

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received.
    """
    with tf.name_scope(name or "adaptive_top_k"):
        parts = _prepare(
            head_weights,
            head_biases,
            tail_projections,
            tail_weights,
            tail_biases,
            inputs,
            cutoffs,
            num_classes,
        )
        k = loss_args.check_top_k(k, parts.num_classes)
        chunk_size = loss_args.check_chunk_size(chunk_size)
        x = tf.stop_gradient(parts.inputs)
        s, m = parts.shortlist, len(parts.bounds)
        head_w = tf.stop_gradient(parts.head_weights)
        head_b = None if parts.head_biases is None else tf.stop_gradient(parts.head_biases)
        top, ids, shortlist_lse = _part_top_k(
            x, head_w[:s], None if head_b is None else head_b[:s], k, chunk_size, parts.dtype
        )
        if not m:
            return top - tf.expand_dims(shortlist_lse, 1), ids
        cluster_logits = _affine(x, head_w[s:], None if head_b is None else head_b[s:])
        head_lse = tf.reduce_logsumexp(
            tf.concat([tf.expand_dims(shortlist_lse, 1), cluster_logits], 1), 1
        )
        # Candidates in class order (shortlist, cluster 0, ...), each part
        # best first with ties by lower id: top_k's lower-position rule on the
        # concatenation then breaks ties by the lower class id.
        scores = [top - tf.expand_dims(head_lse, 1)]
        classes = [ids]
        cluster_log_prob = cluster_logits - tf.expand_dims(head_lse, 1)
        for i, (start, _) in enumerate(parts.bounds):
            hidden = tf.matmul(x, tf.stop_gradient(parts.projections[i]))
            bias = parts.tail_biases[i]
            top, ids, lse = _part_top_k(
                hidden,
                tf.stop_gradient(parts.tail_weights[i]),
                None if bias is None else tf.stop_gradient(bias),
                k,
                chunk_size,
                parts.dtype,
            )
            offset = cluster_log_prob[:, i] - lse
            scores.append(top + tf.expand_dims(offset, 1))
            classes.append(ids + start)
        best, where = tf.math.top_k(tf.concat(scores, 1), k)
        return best, tf.gather(tf.concat(classes, 1), where, batch_dims=1)
