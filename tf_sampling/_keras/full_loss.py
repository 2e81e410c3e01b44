"""Keras' ``y_true``/``y_pred`` shapes, and the exact loss over every class.

Keras hands a loss ``y_true`` of shape ``[*batch]`` (or ``[*batch, num_true]``)
next to a ``y_pred`` of shape ``[*batch, features]``, where ``*batch`` is
``[batch]`` for a classifier and ``[batch, time]`` for a language model. The
functional losses want ``[n, num_true]`` labels and ``[n, dim]`` inputs, so
everything here flattens the batch dimensions and the callers reshape back.
The exact losses themselves, dense (``full_cross_entropy``, from logits) and
chunked (from a head's table), are ``_core.full_softmax``'s.
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import checks, full_softmax, label_sets, loss_args
from tf_sampling._core.full_softmax import SIGMOID, SOFTMAX

# The dense exact loss, for the Keras losses and metrics (an explicit re-export).
from tf_sampling._core.full_softmax import full_cross_entropy as full_cross_entropy
from tf_sampling._keras import output_tags


def flatten_labels(
    y_true,
    y_pred: tf.Tensor,
    num_true: int,
    num_classes: int,
    output_shape=None,
    padding_id: int | None = None,
    allow_empty: bool = False,
):
    """Checks ``y_true`` against ``y_pred`` and returns int64 ``[n, num_true]`` labels.

    Args:
      y_true: int32/int64 ``[*batch]`` (when ``num_true`` is 1), ``[*batch, 1]``
        or ``[*batch, num_true]`` class ids.
      y_pred: float ``[*batch, features]``: the model output, or the head's
        input when the loss is computed from it (only its batch shape is used).
      output_shape: Optional static shape of the model output, quoted in the
        error instead of ``y_pred``'s.
      num_true: int, number of target classes per example.
      num_classes: int, number of classes (ids must lie in ``[0, num_classes)``).
      padding_id: Optional int marking unused slots of a variable number of
        labels per row (``[*batch, max_true]``, ``max_true = num_true``).
      allow_empty: With ``padding_id``, whether a row of only padding is
        allowed (its loss is 0) instead of an error.

    Returns:
      tf.Tensor: int64 ``[n, num_true]`` with ``n = prod(*batch)``, with
      run-time checks of the range and of ``n``; with ``padding_id``, a
      ``LabelSet`` of them (``nn.label_set``; the loss checks the range).

    Raises:
      TypeError: ``y_true`` is neither an integer nor a float tensor.
      ValueError: ``y_true``'s shape does not fit ``y_pred``'s batch shape.
    """
    y_true = tf.convert_to_tensor(y_true)
    # Float labels with whole values are class ids (Keras' sparse losses take them);
    # normalize_labels casts them and refuses a fractional one.
    if y_true.dtype not in (tf.int32, tf.int64) and not y_true.dtype.is_floating:
        raise TypeError(
            "`y_true` (the labels) must hold class ids (int32/int64, or floats with whole "
            f"values), got dtype {y_true.dtype.name}. Pass integer class ids, e.g. "
            "y.astype('int64')."
        )
    batch_shape = y_pred.shape[:-1]
    accepted = [batch_shape.as_list() + [num_true]]
    if num_true == 1:
        accepted.insert(0, batch_shape.as_list())
    if y_true.shape.rank is not None and batch_shape.rank is not None:
        rank, batch_rank = y_true.shape.rank, batch_shape.rank
        fits = (rank == batch_rank and num_true == 1) or (
            rank == batch_rank + 1 and y_true.shape[-1] in (None, num_true)
        )
        if fits and not y_true.shape[:batch_rank].is_compatible_with(batch_shape):
            fits = False
        if not fits:
            raise ValueError(
                f"`y_true` (the labels) must have shape {' or '.join(map(str, accepted))} to "
                f"match the model output of shape "
                f"{tf.TensorShape(output_shape or y_pred.shape).as_list()} with "
                f"num_true={num_true}; got shape {y_true.shape.as_list()}."
            )
    rows = tf.reduce_prod(tf.shape(y_pred)[:-1])
    flat = tf.reshape(y_true, [-1, num_true])
    check = tf.debugging.assert_equal(
        tf.shape(flat)[0],
        rows,
        message=(
            f"`y_true` (the labels) must have shape [*batch] or [*batch, {num_true}] where "
            "y_pred has shape [*batch, features]; the number of label rows differs"
        ),
    )
    with tf.control_dependencies([check]):
        flat = tf.identity(flat)
    if padding_id is not None:
        flat = loss_args.normalize_labels(flat, num_true, num_classes, check_range=False)
        return label_sets.label_set(flat, padding_id=padding_id, allow_empty=allow_empty)
    return loss_args.normalize_labels(flat, num_true, num_classes)


def check_padding_options(padding_id, allow_empty: bool = False) -> tuple[int | None, bool]:
    """A Keras loss's or metric's ``padding_id`` and ``allow_empty``, checked.

    The range of ``padding_id`` (outside ``[0, num_classes)``) is checked
    when it meets a head's labels.

    Raises:
      TypeError: ``padding_id`` is not an int, or ``allow_empty`` not a bool.
      ValueError: ``allow_empty=True`` without ``padding_id``.
    """
    padding_id = label_sets.check_padding_id(padding_id)
    if checks.check_bool(allow_empty, "allow_empty") and padding_id is None:
        raise ValueError(
            "`allow_empty=True` needs `padding_id` (a row of only padding); got padding_id=None."
        )
    return padding_id, allow_empty


def padded_width(y_true, beside: tf.Tensor, hint: str = "") -> int:
    """``max_true`` of padded ``y_true`` ``[*batch, max_true]`` next to ``beside`` ``[*batch, d]``.

    ``[*batch]`` (one slot per example) gives 1; another rank is left to
    :func:`flatten_labels` to refuse.

    Args:
      y_true: The labels.
      beside: ``[*batch, d]``: logits, or a head's input.
      hint: Words added to the error, e.g. what else the caller may pass.
    """
    shape = tf.convert_to_tensor(y_true).shape
    if shape.rank is not None and shape.rank == beside.shape.rank:
        if shape[-1] is None:
            raise ValueError(
                "With `padding_id`, `y_true` [*batch, max_true] needs a known last dimension "
                f"(max_true){hint}. Received: y_true.shape={shape}"
            )
        return int(shape[-1])
    return 1


def flatten_features(y_pred: tf.Tensor) -> tf.Tensor:
    """Returns ``[*batch, features]`` as ``[n, features]``."""
    return tf.reshape(y_pred, [-1, tf.shape(y_pred)[-1]])


def unflatten(values: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Reshapes per-row values ``[n]`` back to ``y_pred``'s batch shape ``[*batch]``."""
    out = tf.reshape(values, tf.shape(y_pred)[:-1])
    out.set_shape(y_pred.shape[:-1])
    return out


def exact_from_table(
    found: output_tags.OutputTag,
    y_true,
    num_true: int,
    objective: str,
    padding_id=None,
    allow_empty: bool = False,
):
    """Exact per-example loss over all classes from a head's input and class table.

    Computed in class blocks (``tf_sampling.nn.full_softmax_cross_entropy`` /
    ``full_sigmoid_cross_entropy``), so ``[n, num_classes]`` logits are never
    held when the table is large, and once per output: the loss and the
    ``Perplexity`` metric of one step share it through ``found.cache``.

    Args:
      found: The output's tag, with ``hidden`` set.
      y_true: int ``[*batch]`` or ``[*batch, num_true]`` class ids.
      num_true: int.
      objective: ``"softmax"`` or ``"sigmoid"``.
      padding_id: Optional int, as in :func:`flatten_labels` (or ``y_true``
        already a flat ``LabelSet``).
      allow_empty: As in :func:`flatten_labels`.

    Returns:
      tf.Tensor: float32 ``[*batch]``.
    """
    return _exact_per_row(found, found.hidden, y_true, num_true, objective, padding_id, allow_empty)


def _exact_per_row(found, hidden, y_true, num_true, objective, padding_id=None, allow_empty=False):
    layer = found.layer
    key = ("exact", objective, num_true)
    if padding_id is not None:
        key = (*key, padding_id, allow_empty)
    if key in found.cache:
        return found.cache[key]
    if label_sets.is_label_set(y_true):
        labels = y_true
    else:
        labels = flatten_labels(
            y_true,
            hidden,
            num_true,
            layer.num_classes,
            hidden.shape[:-1] + [layer.num_classes],
            padding_id,
            allow_empty,
        )
    options = dict(
        num_true=num_true,
        partition_strategy=layer.partition_strategy,
        chunk_size=layer.chunk_size,
    )
    args = (layer.kernel, layer.bias, labels, flatten_features(hidden), layer.num_classes)
    if checks.check_choice(objective, "objective", (SOFTMAX, SIGMOID)) == SOFTMAX:
        # The same pass also ranks the first true class: top-k accuracy for free.
        per_row, rank = full_softmax.full_softmax_cross_entropy_and_rank(*args, **options)
        # Keyed like the loss: a padded pass's rank is not the fixed path's.
        rank_key = ("rank", num_true) if padding_id is None else ("rank", num_true, padding_id)
        found.cache[rank_key] = unflatten(rank, hidden)
    else:
        per_row = full_softmax.full_sigmoid_cross_entropy(*args, **options)
    found.cache[key] = unflatten(tf.cast(per_row, tf.float32), hidden)
    return found.cache[key]


def exact_top_k_hits(found: output_tags.OutputTag, y_true, k: int) -> tf.Tensor:
    """float32 ``[*batch]``: 1 where the (first) target is among the ``k`` best classes.

    From the rank the softmax cross-entropy pass computes (shared with the
    loss and ``Perplexity`` of the same step): a hit is fewer than ``k``
    classes scoring strictly above the target (ties count in, as
    ``tf.math.in_top_k`` does). A row whose cross-entropy is not finite (NaN
    or infinite logits) is never a hit, as in ``tf.math.in_top_k``.
    """
    num_true = found.layer.num_true
    if ("rank", num_true) not in found.cache:
        _exact_per_row(found, found.hidden, y_true, num_true, SOFTMAX)
    rank = found.cache[("rank", num_true)]
    # No comparison with NaN is true, so a row of NaN logits (weights gone
    # NaN) would rank its target first. Its cross-entropy is not finite: like
    # tf.math.in_top_k on non-finite logits, such a row is no hit.
    finite = tf.math.is_finite(found.cache[("exact", SOFTMAX, num_true)])
    return tf.cast((rank < k) & finite, tf.float32)


def logits_of(y_pred: tf.Tensor) -> tf.Tensor | None:
    """float32 logits behind an output, or None for the hidden activations of training.

    Args:
      y_pred: A ``tf_sampling.layers`` output (tagged), or untagged logits of
        any other model (taken as they are).

    Returns:
      tf.Tensor | None: float32 ``[*batch, num_classes]`` logits. For
      ``"probabilities"`` outputs these are the logits the layer computed them
      from, so a true-class probability of 2e-9 still gives its exact loss
      (taking ``log`` of the rounded probability would not); without them
      (a tensor that lost them) the probabilities' own logits.
    """
    found = output_tags.get_tag(y_pred)
    if found is None or found.kind == output_tags.LOGITS:
        return tf.cast(y_pred, tf.float32)
    if found.kind == output_tags.HIDDEN:
        return None
    if found.logits is not None:
        return tf.cast(found.logits, tf.float32)
    return probabilities_to_logits(y_pred, found.layer.objective)


def probabilities_to_logits(probabilities: tf.Tensor, objective: str) -> tf.Tensor:
    """Logits that give back ``probabilities`` under the ``objective``'s activation.

    Args:
      probabilities: float ``[..., num_classes]``, softmax or sigmoid outputs.
      objective: ``"softmax"`` (returns ``log(p)``, which has the same
        softmax) or ``"sigmoid"`` (returns ``log(p) - log(1 - p)``).

    Returns:
      tf.Tensor: float32 logits, with ``p`` clipped to ``[1e-7, 1 - 1e-7]``.
    """
    checks.check_choice(objective, "objective", (SOFTMAX, SIGMOID))
    eps = 1e-7
    p = tf.clip_by_value(tf.cast(probabilities, tf.float32), eps, 1.0 - eps)
    if objective == SOFTMAX:
        return tf.math.log(p)
    return tf.math.log(p) - tf.math.log1p(-p)
