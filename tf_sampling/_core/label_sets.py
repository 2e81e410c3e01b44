"""A variable number of true classes per example, in the fixed shapes the losses compute with.

The losses take ``num_true`` true classes per row. A multi-label batch has
``n_i`` of them in row ``i``; it reaches the losses as a ``tf.RaggedTensor``
``[batch_size, (n_i)]`` or as a :class:`LabelSet` (a padded ``[batch_size,
max_true]`` tensor with a padding id and/or a mask, from
:func:`label_set`). Inside, both become one form (:class:`ResolvedLabels`):

* ``ids`` int64 ``[batch_size, num_true]``: the real labels, each padded slot
  holding a copy of the row's **first real label**. A copy is a valid class
  (lookups need one), and it is already a true class of the row, so it adds
  no accidental hit the real labels do not, and needs no range check of its
  own.
* ``mask`` bool ``[batch_size, num_true]``: the real slots. The losses give a
  padded slot zero target mass and exclude its logit exactly (a select, not
  an arithmetic mask), so a full row computes exactly what the fixed
  ``num_true`` path does.
* ``count`` ``[batch_size]``: ``n_i``; each real label's target is ``1 / n_i``
  (TensorFlow's ``1 / num_true`` rule, per example).

A row with no label is an error (an ``InvalidArgumentError`` when run; under
XLA, which drops asserts, its loss is NaN), unless the caller asked for
``allow_empty``: the row's loss and gradients are then 0.

Ragged tensors are converted with ``to_tensor`` (not XLA-compilable); the
:class:`LabelSet` path is plain fixed-shape ops and compiles.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tf_sampling._core import checks, loss_args, xla

__all__ = [
    "LabelSet",
    "ResolvedLabels",
    "check_padding_id",
    "is_label_set",
    "label_set",
    "ragged_labels",
    "resolve",
    "resolve_checked",
]


class LabelSet(NamedTuple):
    """Padded true classes of a variable count per row (build it with :func:`label_set`).

    Attributes:
      labels: ``[batch_size, max_true]`` class ids, padded slots included.
      mask: Optional bool ``[batch_size, max_true]``, True at the real labels.
      padding_id: Optional int, the id that marks a padded slot (outside
        ``[0, num_classes)``, checked by the loss).
      allow_empty: bool, whether a row may have no label (its loss is 0).
    """

    labels: tf.Tensor
    mask: tf.Tensor | None
    padding_id: int | None
    allow_empty: bool


class ResolvedLabels(NamedTuple):
    """What the losses compute with (see the module docstring).

    Attributes:
      ids: int64 ``[batch_size, num_true]``, padded slots hold the row's first
        real label (class 0 in an empty row).
      mask: bool ``[batch_size, num_true]``, True at the real labels.
      count: float ``[batch_size]`` (``dtype`` of :func:`resolve`), ``n_i``.
      empty: bool ``[batch_size]``, rows without a label (only with
        ``allow_empty``; else all False, the rows failed a check).
    """

    ids: tf.Tensor
    mask: tf.Tensor
    count: tf.Tensor
    empty: tf.Tensor


def is_label_set(labels) -> bool:
    """Whether ``labels`` is a variable-count form (ragged or :class:`LabelSet`)."""
    return isinstance(labels, (tf.RaggedTensor, LabelSet))


def check_padding_id(padding_id) -> int | None:
    """``padding_id`` as a Python int (or None); a bool, float or other type is a TypeError."""
    if padding_id is None:
        return None
    if isinstance(padding_id, np.integer):
        return int(padding_id)
    if isinstance(padding_id, bool) or not isinstance(padding_id, int):
        raise TypeError(
            f"Argument `padding_id` must be a Python int or None. Received: padding_id={padding_id!r}"
        )
    return padding_id


def label_set(
    labels, padding_id: int | None = None, mask=None, allow_empty: bool = False
) -> LabelSet:
    """Marks padded (or ragged) labels as a variable number of true classes per row.

    The result goes wherever the losses take ``labels`` (with ``num_true``
    equal to its width ``max_true``). Fixed shapes throughout: it compiles
    under ``jit_compile=True``.

    Args:
      labels: ``[batch_size, max_true]`` integer class ids with padded slots,
        or a ``tf.RaggedTensor`` ``[batch_size, (n_i)]`` (then no
        ``padding_id``/``mask``; padded to its longest row, not compilable).
      padding_id: Optional int marking padded slots; must lie outside
        ``[0, num_classes)`` (checked by the loss), e.g. -1.
      mask: Optional bool (or 0/1) ``[batch_size, max_true]``, True at the
        real labels. With ``padding_id`` too, a slot is real when both say so.
      allow_empty: bool; a row with no real label is an error unless True,
        when its loss and gradients are 0.

    Returns:
      LabelSet: the padded labels and how to tell the padding.

    Raises:
      ValueError: neither ``padding_id`` nor ``mask`` for a dense tensor, a
        ``mask`` whose static shape differs from ``labels``', or labels not
        of rank 2.
      TypeError: ``padding_id`` not an int, or ``allow_empty`` not a bool.
      tf.errors.InvalidArgumentError: (when run) a mask whose shape differs.
    """
    allow_empty = checks.check_bool(allow_empty, "allow_empty")
    padding_id = check_padding_id(padding_id)
    if isinstance(labels, tf.RaggedTensor):
        if padding_id is not None or mask is not None:
            raise ValueError(
                "Ragged `labels` carry their own row lengths: pass no `padding_id` or `mask`. "
                f"Received: padding_id={padding_id!r}, mask={'given' if mask is not None else None}"
            )
        dense, ragged_mask = _from_ragged(labels, None)
        return LabelSet(dense, ragged_mask, None, allow_empty)
    labels = tf.convert_to_tensor(checks.check_dense(labels, "labels"), name="labels")
    if labels.shape.rank is not None and labels.shape.rank != 2:
        raise ValueError(
            "Argument `labels` must be [batch_size, max_true] padded class ids. "
            f"Received: labels.shape={labels.shape}"
        )
    if padding_id is None and mask is None:
        raise ValueError(
            "Padded `labels` need `padding_id` or `mask` to tell the padding. "
            "Received: padding_id=None, mask=None"
        )
    if mask is not None:
        mask = tf.convert_to_tensor(checks.check_dense(mask, "mask"), name="mask")
        if mask.dtype != tf.bool:
            if not (mask.dtype.is_integer or mask.dtype.is_floating):
                raise TypeError(
                    f"Argument `mask` must be bool or numeric. Received: mask.dtype={mask.dtype.name}"
                )
            mask = tf.not_equal(mask, tf.zeros([], mask.dtype))
        if not mask.shape.is_compatible_with(labels.shape):
            raise ValueError(
                "Argument `mask` must have the shape of `labels`. "
                f"Received: mask.shape={mask.shape}, labels.shape={labels.shape}"
            )
        if not (mask.shape.is_fully_defined() and labels.shape.is_fully_defined()):
            with tf.control_dependencies(
                [
                    tf.debugging.assert_equal(
                        tf.shape(mask),
                        tf.shape(labels),
                        message="Argument `mask` must have the shape of `labels`",
                    )
                ]
            ):
                mask = tf.identity(mask)
    return LabelSet(labels, mask, padding_id, allow_empty)


def _from_ragged(labels: tf.RaggedTensor, width) -> tuple[tf.Tensor, tf.Tensor]:
    """``labels`` padded with 0 to ``width`` columns (its longest row if None), and its mask."""
    if labels.ragged_rank != 1 or labels.shape.rank != 2:
        raise ValueError(
            "Ragged `labels` must be [batch_size, (n_i)] (one ragged dimension). "
            f"Received: labels.shape={labels.shape}, ragged_rank={labels.ragged_rank}"
        )
    if not (labels.dtype.is_integer or labels.dtype.is_floating):
        raise TypeError(
            "Argument `labels` must be integer class ids. "
            f"Received: labels.dtype={labels.dtype.name}"
        )
    lengths = labels.row_lengths()
    if width is None:
        dense = labels.to_tensor(tf.zeros([], labels.dtype))
    else:
        with tf.control_dependencies(
            [
                tf.debugging.assert_less_equal(
                    tf.reduce_max(tf.concat([lengths, tf.zeros([1], lengths.dtype)], 0)),
                    tf.cast(width, lengths.dtype),
                    message=f"Ragged `labels` must have at most num_true={width} labels per row",
                )
            ]
        ):
            dense = labels.to_tensor(tf.zeros([], labels.dtype), shape=[None, width])
    mask = tf.sequence_mask(lengths, tf.shape(dense, out_type=lengths.dtype)[1])
    return dense, mask


def ragged_labels(padded, padding_id: int | None = None, mask=None) -> tf.RaggedTensor:
    """Padded ``[batch_size, max_true]`` labels as a ``tf.RaggedTensor`` ``[batch_size, (n_i)]``.

    The real labels of each row keep their order; a slot is real where it is
    not ``padding_id`` and ``mask`` (if given) is True. Not compilable (the
    values have a data-dependent length): under XLA use :func:`label_set`.

    Raises:
      ValueError, TypeError, tf.errors.InvalidArgumentError: as :func:`label_set`.
    """
    padded_set = label_set(padded, padding_id=padding_id, mask=mask)
    return tf.ragged.boolean_mask(padded_set.labels, real_mask(padded_set))


def real_mask(labels: LabelSet) -> tf.Tensor:
    """bool ``[batch_size, max_true]``: the real slots of ``labels`` (mask and padding id)."""
    real = labels.mask
    if labels.padding_id is not None:
        not_padding = tf.not_equal(
            tf.cast(labels.labels, tf.int64), tf.constant(labels.padding_id, tf.int64)
        )
        real = not_padding if real is None else real & not_padding
    return real


def resolve(
    labels, num_true: int, num_classes: int, batch_size=None, dtype: tf.DType = tf.float32
) -> ResolvedLabels:
    """Checks variable-count labels and returns the losses' form (module docstring).

    Args:
      labels: ``tf.RaggedTensor`` ``[batch_size, (n_i)]`` (``n_i <= num_true``)
        or :class:`LabelSet` of width ``num_true``.
      num_true: int, the padded width (the bound on ``n_i``).
      num_classes: int, number of classes.
      batch_size: as ``loss_args.normalize_labels``.
      dtype: float dtype of ``count``.

    Returns:
      ResolvedLabels.

    Raises:
      ValueError: a ``padding_id`` inside ``[0, num_classes)``, a width other
        than ``num_true``, or the label checks of ``normalize_labels``.
      tf.errors.InvalidArgumentError: (when run) a row without a label
        (unless ``allow_empty``), a ragged row longer than ``num_true``, a
        real label outside ``[0, num_classes)`` (checked where the loss
        looks it up).
    """
    if isinstance(labels, tf.RaggedTensor):
        dense, mask = _from_ragged(labels, num_true)
        labels = LabelSet(dense, mask, None, False)
    padding_id = labels.padding_id
    if padding_id is not None and 0 <= padding_id < num_classes:
        raise ValueError(
            f"Argument `padding_id` must lie outside [0, num_classes={num_classes}): a class id "
            f"cannot mark padding. Received: padding_id={padding_id}"
        )
    real = real_mask(labels)
    # Shape and dtype checks of the padded ids (range checked later, on `ids`).
    ids = loss_args.normalize_labels(
        labels.labels, num_true, num_classes, batch_size, check_range=False
    )
    return resolve_checked(ids, tf.reshape(real, tf.shape(ids)), labels.allow_empty, dtype)


def resolve_checked(
    ids: tf.Tensor, real: tf.Tensor, allow_empty: bool, dtype: tf.DType = tf.float32
) -> ResolvedLabels:
    """The losses' form of int64 ids ``[batch_size, w]`` whose shape and dtype are checked.

    The second half of :func:`resolve`, for callers that checked the ids
    themselves (e.g. a width known only at run time): the padded slots get
    the row's first real label, and a row without one is an error unless
    ``allow_empty``.

    Args:
      ids: int64 ``[batch_size, w]``; padded slots hold anything.
      real: bool ``[batch_size, w]``, True at the real labels.
      allow_empty: whether a row without a real label is allowed.
      dtype: float dtype of ``count``.

    Returns:
      ResolvedLabels.
    """
    count_int = tf.reduce_sum(tf.cast(real, tf.int32), 1)
    has_label = count_int > 0
    # The first real slot of each row (argmax returns the first maximum).
    first_slot = tf.argmax(tf.cast(real, tf.int32), axis=1, output_type=tf.int32)
    first = tf.gather(ids, first_slot, batch_dims=1)
    first = tf.where(has_label, first, tf.zeros([], tf.int64))
    ids = tf.where(real, ids, tf.expand_dims(first, 1))
    if allow_empty:
        empty = tf.logical_not(has_label)
    else:
        empty = tf.zeros_like(has_label)
        if not xla.in_xla_context():
            with tf.control_dependencies(
                [
                    tf.debugging.assert_equal(
                        has_label,
                        tf.ones_like(has_label),
                        message="Every example needs at least one true label (a row of `labels` "
                        "is all padding); label_set(..., allow_empty=True) gives such rows loss 0",
                    )
                ]
            ):
                ids = tf.identity(ids)
    count = tf.cast(count_int, dtype)
    return ResolvedLabels(ids, real, count, empty)


def unlabeled_rows(labels: ResolvedLabels) -> tf.Tensor:
    """bool ``[batch_size]``: rows without a label that were not allowed (XLA: their loss is NaN)."""
    return tf.logical_not(labels.empty) & tf.equal(labels.count, tf.zeros([], labels.count.dtype))


def true_expected_count(sampled_values, mask: tf.Tensor):
    """``sampled_values`` with the padded slots' true expected counts set to 1 (never read).

    Padding has no expected count: whatever the caller's sampler wrote there
    (0, say) must not fail the positivity check of the real ones.
    """
    if sampled_values is None or not isinstance(sampled_values, (tuple, list)):
        return sampled_values
    if len(sampled_values) != 3:
        return sampled_values
    sampled, true_expected, sampled_expected = sampled_values
    try:
        true_expected = tf.convert_to_tensor(true_expected)
    except (TypeError, ValueError):
        return sampled_values
    if not true_expected.dtype.is_floating or true_expected.shape.rank != 2:
        return sampled_values
    if true_expected.shape[1] == 1:
        return sampled_values
    true_expected = tf.where(mask, true_expected, tf.ones([], true_expected.dtype))
    return (sampled, true_expected, sampled_expected)


def padded_with_mask(labels, num_true: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Ragged or :class:`LabelSet` true classes as int64 ``[batch_size, num_true]`` and their mask.

    For samplers: the padded slots' ids are whatever the input held (0 for
    ragged input); only the mask says which are real. No range check here
    (the sampler checks the real ones).

    Raises:
      ValueError: a width other than ``num_true``.
      tf.errors.InvalidArgumentError: (when run) a ragged row longer than ``num_true``.
    """
    if isinstance(labels, tf.RaggedTensor):
        dense, mask = _from_ragged(labels, num_true)
    else:
        dense, mask = labels.labels, real_mask(labels)
    if dense.shape.rank == 2 and dense.shape[1] not in (None, num_true):
        raise ValueError(
            f"Argument `true_classes` must be {num_true} wide (num_true={num_true}). "
            f"Received: shape={dense.shape}"
        )
    if not (dense.dtype.is_integer or dense.dtype.is_floating):
        raise TypeError(
            f"Argument `true_classes` must be integer class ids. Received: dtype={dense.dtype.name}"
        )
    return tf.cast(dense, tf.int64), mask
