"""TAPAS: rank-based adaptive resampling for the sampled softmax loss.

``rank_sampled_softmax_loss`` keeps the signature and the numbers of TF 1.x
``tf.contrib.nn.rank_sampled_softmax_loss`` (Bai, Goldman & Zhang, 2017,
"TAPAS: Two-pass Approximate Adaptive Sampling for Softmax",
arXiv:1707.03073). The sampled softmax of the second pass is this package's
``sampled_softmax_loss``, so sharded tables, mixed precision and label checks
behave exactly as they do there.
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import checks, default_sampler, label_sets, loss_args, sharding
from tf_sampling._core.sampled_logits import compute_dtype
from tf_sampling._core.sampled_losses import sampled_softmax_loss
from tf_sampling._core.sampled_values import check_sampled_values


def _global_batch_scores(batch_scores: tf.Tensor, sampled: tf.Tensor) -> tf.Tensor:
    """The log-sum-exp over the *global* batch, under a synchronous strategy.

    In a replica context of several replicas (``MirroredStrategy``,
    ``MultiWorkerMirroredStrategy``) each replica holds only its slice of the
    batch. When every replica has the same candidates, the log-sum-exp of the
    replicas' local log-sum-exps is exactly the one over the global batch, so
    every replica keeps the candidates one device would keep. Otherwise (e.g.
    per-replica learned samplers) each replica keeps its local ranking.

    Args:
      batch_scores: float ``[num_sampled]``, local log-sum-exp per candidate.
      sampled: int64 ``[num_sampled]``, the candidates.

    Returns:
      tf.Tensor: ``[num_sampled]`` scores, the same on every replica when their
      candidates agree.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return batch_scores
    # Both gathers run on every replica unconditionally (collectives must match).
    all_scores = context.all_gather(batch_scores[None], axis=0)
    all_sampled = context.all_gather(sampled[None], axis=0)
    # True on every replica, or false on every replica.
    same = tf.reduce_all(tf.equal(all_sampled, sampled[None]))
    return tf.where(same, tf.reduce_logsumexp(all_scores, axis=0), batch_scores)


def rank_resample(
    weight_table: sharding.ShardedTable,
    bias_table: sharding.ShardedTable,
    inputs: tf.Tensor,
    sampled_values: tuple[tf.Tensor, tf.Tensor, tf.Tensor],
    num_resampled: int,
    resampling_temperature: float | tf.Tensor,
    dtype: tf.DType,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Second TAPAS pass: keeps the ``num_resampled`` best-scoring candidates.

    The score of candidate ``c`` is the log-sum-exp over the batch of its
    logits divided by the temperature, ``T``::

        score(c) = logsumexp_j((w_c . x_j + b_c) / T)
                 = logsumexp_j(w_c . (x_j / T)) + b_c / T

    (the second form is the one computed; under a synchronous strategy whose
    replicas share the candidates, ``j`` runs over the global batch, see
    ``_global_batch_scores``). The kept candidates carry their
    first-pass expected counts, and the true classes' expected counts are the
    first-pass ones unchanged, as in TF 1.x. The selection is a constant for
    differentiation.

    Args:
      weight_table: The ``[num_classes, dim]`` class embeddings.
      bias_table: The ``[num_classes]`` class biases.
      inputs: ``[batch_size, dim]`` activations.
      sampled_values: Validated first-pass ``(sampled [num_sampled] int64,
        true_expected_count [batch_size, num_true], sampled_expected_count
        [num_sampled])``.
      num_resampled: int, number of candidates kept (< ``num_sampled``).
      resampling_temperature: Positive float or scalar tensor.
      dtype: Dtype the scores are computed in.

    Returns:
      tuple: ``(resampled [num_resampled] int64, true_expected_count
      [batch_size, num_true], resampled_expected_count [num_resampled])``.
    """
    sampled, true_expected, sampled_expected = (tf.stop_gradient(v) for v in sampled_values)
    with tf.name_scope("rank_resample"):
        temperature = tf.cast(resampling_temperature, dtype)
        scaled_inputs = tf.cast(inputs, dtype) / temperature
        sampled_w = tf.cast(weight_table.gather(sampled), dtype)
        sampled_b = tf.cast(bias_table.gather(sampled), dtype)
        batch_scores = tf.reduce_logsumexp(
            tf.matmul(sampled_w, scaled_inputs, transpose_b=True), axis=1
        )
        scores = _global_batch_scores(batch_scores, sampled) + sampled_b / temperature
        # Only the indices of the top scores are used; no gradient flows
        # through the choice of candidates.
        _, keep = tf.math.top_k(tf.stop_gradient(scores), k=num_resampled, sorted=False)
        # The sampled counts are [num_sampled] or per example [rows, num_sampled].
        resampled_expected = tf.gather(sampled_expected, keep, axis=-1)
        return tf.gather(sampled, keep), true_expected, resampled_expected


def rank_sampled_softmax_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_resampled,
    num_classes,
    num_true,
    sampled_values,
    resampling_temperature,
    remove_accidental_hits,
    partition_strategy,
    name=None,
) -> tf.Tensor:
    """Sampled softmax loss with rank-based adaptive resampling (TAPAS).

    Two passes, as in TF 1.x ``tf.contrib.nn.rank_sampled_softmax_loss``:

    1. ``num_sampled`` candidate classes are drawn (by default with this
       package's learned-unigram sampler over ``num_classes``, ``unique=True``)
       or taken from ``sampled_values``.
    2. Each candidate ``c`` is scored by ``logsumexp_j((w_c . x_j + b_c) / T)``,
       the log-sum-exp over the batch rows ``x_j`` of its logits divided by
       ``T = resampling_temperature``, and the ``num_resampled`` best-scoring
       candidates are kept. The sampled softmax loss (see
       ``tf_sampling.nn.sampled_softmax_loss``) is computed on those, with the
       first-pass expected counts: the kept candidates' own
       ``sampled_expected_count`` entries and the unchanged
       ``true_expected_count``.

    A lower temperature makes the resampling more adaptive (it keeps the
    candidates the model finds most confusable with some example of the
    batch); a common schedule lowers it during training, which a ``tf.Variable``
    temperature allows without retracing.

    Gradients are those of the second-pass sampled softmax loss for the kept
    candidates: the resampling selection (the scores and the top-k choice) is
    not differentiated through, and ``sampled_values`` are constants, exactly
    as in TF 1.x. The temperature therefore receives no gradient.

    This loss is for training; it generally underestimates the full softmax
    loss. When evaluating with the full softmax over sharded weights, train
    with ``partition_strategy="div"`` so both agree on which row is which
    class.

    Args:
      weights: ``[num_classes, dim]`` tensor/variable, or a list of shards,
        ``PartitionedVariable`` or ``ShardedVariable`` of that logical shape.
        The (possibly sharded) class embeddings.
      biases: ``[num_classes]`` class biases, sharded like ``weights``.
      labels: integer (any dtype, or whole-number floats)
        ``[batch_size, num_true]`` target classes
        (``[batch_size]`` accepted when ``num_true`` is 1).
      inputs: float ``[batch_size, dim]`` forward activations (float16 and
        bfloat16 are computed in float32).
      num_sampled: int, number of classes sampled in the first pass
        (``<= num_classes``); given ``sampled_values`` of another length,
        their length wins (with a warning), as in TF.
      num_resampled: int, number of classes kept by the resampling; must be
        less than ``num_sampled``.
      num_classes: int, number of possible classes.
      num_true: int, number of target classes per example; for
        variable-count labels, the padded width (the bound on ``n_i``).
        Variable counts: ``labels`` may also be a ``tf.RaggedTensor``
        ``[batch_size, (n_i)]`` or ``nn.label_set(padded, padding_id=...,
        mask=...)``, as in ``sampled_softmax_loss`` (target ``1 / n_i`` per
        real label); the default sampler counts only the real labels.
      sampled_values: ``None``, or the first-pass ``(sampled_candidates
        [num_sampled], true_expected_count [batch_size, num_true],
        sampled_expected_count [num_sampled])`` returned by a
        ``*_candidate_sampler``; the counts may broadcast as in
        ``sampled_softmax_loss`` (contrib's tests pass ``[[0.5], [0.5]]`` with
        ``num_true=2``), per-candidate counts following their candidates. ``None`` samples with
        ``tf_sampling.ops.learned_unigram_candidate_sampler`` (``unique=True``,
        ``range_max=num_classes``); inside ``tf.function(jit_compile=True)``,
        with the compilable learned-unigram sampler, whose counts are shared
        by every such call for ``num_classes`` in the process (see
        ``tf_sampling.samplers.xla_defaults``).
      resampling_temperature: Positive Python float, or a positive scalar
        ``tf.Tensor``/``tf.Variable`` (checked at run time).
      remove_accidental_hits: bool, whether to mask kept candidates that equal
        one of the example's true classes.
      partition_strategy: ``"mod"`` or ``"div"``, how class ids map onto
        sharded ``weights``/``biases`` (as ``tf.nn.embedding_lookup``).
      name: Optional name scope (default ``"rank_sampled_softmax_loss"``).

    Returns:
      tf.Tensor: ``[batch_size]`` per-example sampled softmax losses, float32
      (float64 when an operand is float64).

    Raises:
      ValueError: ``num_sampled <= num_resampled``, ``num_sampled >
        num_classes``, a ``partition_strategy`` other than ``"mod"`` or
        ``"div"`` (these three start with TF 1.x contrib's words), fewer given
        candidates than ``num_resampled``, a non-positive or non-finite
        Python temperature, a non-scalar temperature tensor, and every invalid argument
        ``sampled_softmax_loss`` rejects (shapes, ``partition_strategy``,
        ``sampled_values``...).
      TypeError: non-integer counts, labels neither integer nor float,
        non-float inputs, a non-real temperature.
      tf.errors.InvalidArgumentError: at run time, a temperature tensor that is
        not positive and finite, or class ids outside ``[0, num_classes)``
        (under ``jit_compile=True``: NaN rows instead, as in
        ``sampled_softmax_loss``).
    """
    num_true = checks.check_int(num_true, "num_true")
    num_classes = checks.check_int(num_classes, "num_classes")
    num_sampled = checks.check_int(num_sampled, "num_sampled")
    # TF 1.x contrib's checks, in its order and with its words first.
    if num_sampled > num_classes:
        raise ValueError(
            f"num_sampled ({num_sampled}) cannot be greater than num_classes ({num_classes}): "
            f"`num_sampled` must be <= `num_classes`, got num_sampled={num_sampled}, "
            f"num_classes={num_classes}."
        )
    num_resampled = loss_args.check_num_resampled(num_resampled, num_sampled)
    if not isinstance(partition_strategy, str) or partition_strategy not in ("mod", "div"):
        raise ValueError(
            f"unsupported partition_strategy ({partition_strategy}): `partition_strategy` must "
            f"be 'mod' or 'div', got partition_strategy={partition_strategy!r}."
        )
    with tf.name_scope(name or "rank_sampled_softmax_loss"):
        temperature = loss_args.check_resampling_temperature(resampling_temperature)
        inputs = loss_args.check_inputs(inputs)
        # The first pass looks rows up before the second pass checks the
        # tables: check what it relies on here.
        weight_table, bias_table = sharding.class_tables(
            weights, biases, inputs, num_classes, partition_strategy
        )
        batch_size = loss_args.static_or_dynamic_batch_size(inputs)
        variable = None
        if label_sets.is_label_set(labels):
            # Variable counts: the losses see the real labels with a mask,
            # the default sampler only the real labels (never the padding).
            variable = labels
            resolved = label_sets.resolve(labels, num_true, num_classes, batch_size)
            allow_empty = isinstance(labels, label_sets.LabelSet) and labels.allow_empty
            labels = resolved.ids
        labels = loss_args.normalize_labels(labels, num_true, num_classes, batch_size)
        if sampled_values is None:
            # The learned-unigram op, or under XLA (where it has no kernel)
            # the compilable learned-unigram sampler.
            sampled_values = default_sampler.sampled_values(
                "learned_unigram",
                labels if variable is None else variable,
                num_true,
                num_sampled,
                num_classes,
                None,
            )
        if variable is not None:
            sampled_values = label_sets.true_expected_count(sampled_values, resolved.mask)
            labels = label_sets.LabelSet(labels, resolved.mask, None, allow_empty)
        sampled_values = check_sampled_values(
            sampled_values, num_sampled, num_true, num_classes, batch_size
        )
        # The candidates' length wins over a differing num_sampled, as in TF;
        # all of them may be kept (TF's top_k needs at least num_resampled).
        length = sampled_values[0].shape[0]
        if length is not None and length < num_resampled:
            raise ValueError(
                f"`sampled_values[0]` must hold at least num_resampled ({num_resampled}) "
                f"candidates to keep, got {length} candidates (shape [{length}])."
            )
        resampled_values = rank_resample(
            weight_table,
            bias_table,
            inputs,
            sampled_values,
            num_resampled,
            temperature,
            compute_dtype(inputs.dtype, weight_table.dtype),
        )
        return sampled_softmax_loss(
            weights=weights,
            biases=biases,
            labels=labels,
            inputs=inputs,
            num_sampled=num_resampled,
            num_classes=num_classes,
            num_true=num_true,
            sampled_values=resampled_values,
            remove_accidental_hits=remove_accidental_hits,
            partition_strategy=partition_strategy,
            name="sampled_softmax_loss",
        )
