"""``sampled_softmax_loss`` and ``nce_loss`` with TensorFlow's v1 signatures."""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import checks, label_sets, xla
from tf_sampling._core.sampled_logits import SMALL_NUM_SAMPLED, compute_sampled_logits
from tf_sampling._core.split_softmax import (
    masked_split_softmax_cross_entropy,
    split_softmax_cross_entropy,
)


def _resolve_variable_labels(labels, num_true, num_classes, sampled_values):
    """Variable-count labels in the loss's form, and the sampled values to pass on."""
    num_true = checks.check_int(num_true, "num_true")
    num_classes = checks.check_int(num_classes, "num_classes")
    resolved = label_sets.resolve(labels, num_true, num_classes)
    return resolved, label_sets.true_expected_count(sampled_values, resolved.mask)


def _split_logits(labels, num_true, num_classes, sampled_values, **logit_args):
    """``(resolved, true_logits, sampled_logits)``; ``resolved`` is None for fixed-count labels.

    The shared start of both losses: variable-count labels are resolved into
    padded ids and a mask first (their padded slots' expected counts are
    never read), then the logits are computed as for fixed ``num_true``.
    """
    resolved = None
    if label_sets.is_label_set(labels):
        resolved, sampled_values = _resolve_variable_labels(
            labels, num_true, num_classes, sampled_values
        )
        labels = resolved.ids
    true_logits, sampled_logits = compute_sampled_logits(
        labels=labels,
        num_classes=num_classes,
        num_true=num_true,
        sampled_values=sampled_values,
        subtract_log_q=True,
        **logit_args,
    )
    return resolved, true_logits, sampled_logits


def _finish_variable(losses: tf.Tensor, resolved) -> tf.Tensor:
    """Under XLA (asserts dropped), rows with no label that were not allowed get NaN."""
    if xla.in_xla_context():
        return xla.nan_rows(losses, label_sets.unlabeled_rows(resolved))
    return losses


def _logits_and_targets(true_logits, sampled_logits, num_true: int):
    """Concatenates the logits, true classes first, with their targets.

    For NCE on few samples: one concatenated sigmoid cross-entropy runs fewer
    kernels than two halves.

    Args:
      true_logits: ``[batch_size, num_true]``.
      sampled_logits: ``[batch_size, num_sampled]``.
      num_true: Number of true classes per example.

    Returns:
      tuple: ``logits`` and ``targets``, both ``[batch_size, num_true + num_sampled]``.
    """
    logits = tf.concat([true_logits, sampled_logits], 1)
    targets = tf.pad(
        tf.fill(tf.shape(true_logits), tf.constant(1.0 / num_true, logits.dtype)),
        [[0, 0], [0, tf.shape(sampled_logits)[1]]],
    )
    return logits, targets


def _masked_nce(true_logits, sampled_logits, resolved, num_sampled: int) -> tf.Tensor:
    """NCE losses where only the real true columns count, target ``1 / n_i`` each.

    The same sums as the fixed ``num_true`` path (each path's own kernel
    layout), the padded columns' cross-entropies replaced by 0 with a
    select, so that a full row gives that path's numbers bit for bit.
    """
    dtype = true_logits.dtype
    zero = tf.zeros([], dtype)
    safe_count = tf.where(resolved.empty, tf.ones([], dtype), tf.cast(resolved.count, dtype))
    target = tf.broadcast_to(tf.expand_dims(1.0 / safe_count, 1), tf.shape(true_logits))
    width = sampled_logits.shape[1]
    if (width if width is not None else num_sampled) <= SMALL_NUM_SAMPLED:
        logits = tf.concat([true_logits, sampled_logits], 1)
        targets = tf.pad(target, [[0, 0], [0, tf.shape(sampled_logits)[1]]])
        keep = tf.pad(
            resolved.mask, [[0, 0], [0, tf.shape(sampled_logits)[1]]], constant_values=True
        )
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        losses = tf.reduce_sum(tf.where(keep, losses, zero), 1)
    else:
        true_losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=true_logits)
        losses = tf.reduce_sum(tf.where(resolved.mask, true_losses, zero), 1) + tf.reduce_sum(
            tf.nn.softplus(sampled_logits), 1
        )
    return tf.where(resolved.empty, zero, losses)


def sampled_softmax_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true=1,
    sampled_values=None,
    remove_accidental_hits=True,
    partition_strategy="mod",
    name="sampled_softmax_loss",
    seed=None,
) -> tf.Tensor:
    """Sampled softmax training loss (Jean et al., 2014).

    A fast, biased estimate of the full softmax cross-entropy for training over
    many classes: the softmax runs over the true classes and ``num_sampled``
    sampled ones, with logits corrected by ``-log(expected count)``. Identical
    in value and gradient to ``tf.compat.v1.nn.sampled_softmax_loss`` for the
    same ``sampled_values``, and additionally:

    * ``inputs``/``weights`` may be float16 or bfloat16 (computed in float32);
    * ``labels`` are validated (dtype, shape, range);
    * a ``ShardedVariable`` is one logical table under either strategy;
    * weight and bias gradients are always ``tf.IndexedSlices``.

    Evaluate with the full softmax; with sharded weights use
    ``partition_strategy="div"`` so training and the full logits agree on which
    row is which class (``tf_sampling.layers`` handles this for you).

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      labels: integer ``[batch_size, num_true]`` target classes, any integer
        dtype, or floats holding whole numbers (cast, as TF casts them; a
        fractional one is an error, where TF truncates it) (``[batch_size]``
        accepted when ``num_true`` is 1).
      inputs: float ``[batch_size, dim]`` forward activations.
      num_sampled: int, number of classes to sample per batch. With
        ``sampled_values`` of another length, their length wins (TF ignores
        ``num_sampled`` then), with a warning.
      num_classes: int, number of possible classes.
      num_true: int, number of target classes per example; for
        variable-count labels, the padded width (the bound on ``n_i``).
        Variable counts: ``labels`` may also be a ``tf.RaggedTensor``
        ``[batch_size, (n_i)]`` with ``1 <= n_i <= num_true``, or
        ``nn.label_set(padded, padding_id=..., mask=...)`` of width
        ``num_true``: example ``i``'s ``n_i`` true classes then share the
        target mass, ``1 / n_i`` each, and the padding takes no part (no
        logit, no accidental hit, its true expected counts never read). A
        row without a label is an ``InvalidArgumentError`` unless
        ``label_set(..., allow_empty=True)`` (loss 0).
      sampled_values: Optional ``(sampled_candidates [num_sampled],
        true_expected_count [batch_size, num_true], sampled_expected_count
        [num_sampled])`` from a ``*_candidate_sampler`` (Python lists and
        NumPy arrays too); the counts may have any shape that broadcasts to
        those, as in TF (e.g. ``[batch_size, 1]`` true counts), and must be
        positive and finite. Default: ``tf.random.log_uniform_candidate_sampler``
        with ``unique=True``; inside ``tf.function(jit_compile=True)``, the
        compilable log-uniform sampler (same distribution, unique; its stream
        is keyed by ``seed`` and the global seed and moves on every call; see
        ``tf_sampling.samplers.xla_defaults``).
      remove_accidental_hits: bool, mask sampled classes equal to a true class.
      partition_strategy: ``"mod"`` or ``"div"``, for sharded tables.
      name: Name scope of the operation.
      seed: Op-level seed of the default sampler.

    Returns:
      tf.Tensor: ``[batch_size]`` per-example losses, float32 (float64 when an
      operand is float64).

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received (``ValueError`` for bad Python/NumPy expected
        counts).
      tf.errors.InvalidArgumentError: at run time for labels outside
        ``[0, num_classes)``, expected counts in tensors that are not positive
        and finite, or shapes the graph left open that do not fit (labels of
        another batch size than ``inputs``, counts that would grow the logits).
        Under ``jit_compile=True``, where XLA drops these asserts, the rows of
        out-of-range labels (every row, for out-of-range candidates) get a
        NaN loss and NaN gradients instead of a plausible number.
    """
    with tf.name_scope(name or "sampled_softmax_loss"):
        resolved, true_logits, sampled_logits = _split_logits(
            labels,
            num_true,
            num_classes,
            sampled_values,
            weights=weights,
            biases=biases,
            inputs=inputs,
            num_sampled=num_sampled,
            remove_accidental_hits=remove_accidental_hits,
            partition_strategy=partition_strategy,
            seed=seed,
        )
        if resolved is None:
            return split_softmax_cross_entropy(true_logits, sampled_logits)
        losses = masked_split_softmax_cross_entropy(
            true_logits,
            sampled_logits,
            resolved.mask,
            tf.cast(resolved.count, true_logits.dtype),
            resolved.empty,
        )
        return _finish_variable(losses, resolved)


def nce_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true=1,
    sampled_values=None,
    remove_accidental_hits=False,
    partition_strategy="mod",
    name="nce_loss",
) -> tf.Tensor:
    """Noise-contrastive estimation training loss (Gutmann & Hyvärinen, 2010).

    Logistic regression of true classes (target ``1 / num_true`` each) against
    ``num_sampled`` noise classes (target 0), with logits corrected by
    ``-log(expected count)``, summed per example. Identical in value and
    gradient to ``tf.compat.v1.nn.nce_loss`` for the same ``sampled_values``,
    with the same extras as :func:`sampled_softmax_loss` (mixed precision,
    validated labels, sparse gradients, consistent ``ShardedVariable``).

    Evaluate with the full sigmoid cross-entropy over all classes.

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      labels: integer (any dtype, or whole-number floats)
        ``[batch_size, num_true]`` target classes (``[batch_size]`` accepted
        when ``num_true`` is 1).
      inputs: float ``[batch_size, dim]`` forward activations.
      num_sampled: int, number of noise classes to sample per batch (the
        length of given ``sampled_values`` wins, as in TF).
      num_classes: int, number of possible classes.
      num_true: int, number of target classes per example; for
        variable-count labels, the padded width (the bound on ``n_i``).
        Variable counts: ``labels`` may also be a ``tf.RaggedTensor``
        ``[batch_size, (n_i)]`` with ``1 <= n_i <= num_true``, or
        ``nn.label_set(padded, padding_id=..., mask=...)`` of width
        ``num_true``: example ``i``'s ``n_i`` true classes then share the
        target mass, ``1 / n_i`` each, and the padding takes no part (no
        logit, no accidental hit, its true expected counts never read). A
        row without a label is an ``InvalidArgumentError`` unless
        ``label_set(..., allow_empty=True)`` (loss 0).
      sampled_values: Optional sampler triple as in :func:`sampled_softmax_loss`
        (broadcasting, positive counts); default
        ``tf.random.log_uniform_candidate_sampler`` with ``unique=True``, or
        under ``jit_compile=True`` the compilable log-uniform sampler, as in
        :func:`sampled_softmax_loss` (keyed by the global seed only).
      remove_accidental_hits: bool, mask sampled classes equal to a true class.
        False by default, as in TensorFlow.
      partition_strategy: ``"mod"`` or ``"div"``, for sharded tables.
      name: Name scope of the operation.

    Returns:
      tf.Tensor: ``[batch_size]`` per-example NCE losses, float32 (float64 when
      an operand is float64).

    Raises:
      ValueError, TypeError: for invalid arguments, naming the argument and
        the value received.
      tf.errors.InvalidArgumentError: at run time for labels outside
        ``[0, num_classes)``, bad expected counts or shapes, as in
        :func:`sampled_softmax_loss`.
    """
    with tf.name_scope(name or "nce_loss"):
        resolved, true_logits, sampled_logits = _split_logits(
            labels,
            num_true,
            num_classes,
            sampled_values,
            weights=weights,
            biases=biases,
            inputs=inputs,
            num_sampled=num_sampled,
            remove_accidental_hits=remove_accidental_hits,
            partition_strategy=partition_strategy,
        )
        # Small: one concatenated cross-entropy (fewer kernels). Large: softplus
        # on the sampled logits, about twice as fast as the composite form.
        # (The candidates' length, which wins over a differing num_sampled.)
        if resolved is not None:
            return _finish_variable(
                _masked_nce(true_logits, sampled_logits, resolved, num_sampled), resolved
            )
        width = sampled_logits.shape[1]
        if (width if width is not None else num_sampled) <= SMALL_NUM_SAMPLED:
            logits, targets = _logits_and_targets(true_logits, sampled_logits, num_true)
            losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
            return tf.reduce_sum(losses, 1)
        true_losses = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.fill(tf.shape(true_logits), tf.constant(1.0 / num_true, true_logits.dtype)),
            logits=true_logits,
        )
        # softplus(x) is the cross-entropy against a 0 target.
        return tf.reduce_sum(true_losses, 1) + tf.reduce_sum(tf.nn.softplus(sampled_logits), 1)


def sampled_sparse_softmax_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    sampled_values=None,
    remove_accidental_hits=True,
    partition_strategy="mod",
    name="sampled_sparse_softmax_loss",
) -> tf.Tensor:
    """Sampled softmax loss for one true class per example (TF 1.x contrib's signature).

    TF 1.15 ``tf.contrib.nn.sampled_sparse_softmax_loss``: the sampled softmax
    loss with ``num_true=1``, whose true class sits at column 0 of the
    ``[true, sampled]`` logits, so that the loss is the sparse softmax
    cross-entropy of that column: ``logsumexp(logits) - true_logit``. This is
    :func:`sampled_softmax_loss` with ``num_true=1``, value and gradient, for
    the same ``sampled_values`` (unlike TF 1.15, a batch of one example
    works: TF squeezed its ``[1, 1]`` labels into a scalar).

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      labels: ``[batch_size, 1]`` (or ``[batch_size]``) target classes, of an
        integer dtype (or whole-number floats).
      inputs: float ``[batch_size, dim]`` forward activations.
      num_sampled: int, number of classes to sample per batch.
      num_classes: int, number of possible classes.
      sampled_values: Optional sampler triple as in :func:`sampled_softmax_loss`;
        default ``tf.random.log_uniform_candidate_sampler`` (``unique=True``),
        or under ``jit_compile=True`` the compilable log-uniform sampler.
      remove_accidental_hits: bool, mask sampled classes equal to the true one.
      partition_strategy: ``"mod"`` or ``"div"``, for sharded tables.
      name: Name scope of the operation.

    Returns:
      tf.Tensor: ``[batch_size]`` per-example losses, float32 (float64 when an
      operand is float64).

    Raises:
      ValueError, TypeError, tf.errors.InvalidArgumentError: as
        :func:`sampled_softmax_loss`; ``labels`` of another shape than
        ``[batch_size, 1]`` or ``[batch_size]`` is a ``ValueError``.
    """
    with tf.name_scope(name or "sampled_sparse_softmax_loss"):
        true_logits, sampled_logits = compute_sampled_logits(
            weights=weights,
            biases=biases,
            labels=labels,
            inputs=inputs,
            num_sampled=num_sampled,
            num_classes=num_classes,
            num_true=1,
            sampled_values=sampled_values,
            subtract_log_q=True,
            remove_accidental_hits=remove_accidental_hits,
            partition_strategy=partition_strategy,
        )
        # One true column: the softmax cross-entropy against target 1 on it
        # is the sparse one of class 0.
        return split_softmax_cross_entropy(true_logits, sampled_logits)
