"""Argument checks shared by every loss.

Each check raises an error that names the argument and quotes what it
received: ``ValueError``/``TypeError`` for anything known when the graph is
built, ``tf.errors.InvalidArgumentError`` (through ``tf.debugging`` asserts)
for values only known at run time.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import tensorflow as tf

PARTITION_STRATEGIES = ("mod", "div")


def check_int(value, name: str, minimum: int = 1) -> int:
    """Returns ``value`` as an ``int`` after checking it is an integer >= ``minimum``.

    The one integer-argument check of the package (losses, op, layers).

    Args:
      value: Python or NumPy integer.
      name: The argument's name, quoted in the error.
      minimum: Smallest allowed value.

    Returns:
      int: ``value``.

    Raises:
      TypeError: ``value`` is not an integer (bools are rejected too).
      ValueError: ``value`` < ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be a Python int, got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {name}={value}.")
    return int(value)


def check_num_sampled(num_sampled, num_classes: int, unique: bool = True) -> int:
    """Checks ``num_sampled`` against ``num_classes``.

    Args:
      num_sampled: Number of classes to sample per batch.
      num_classes: Size of the class range (already checked).
      unique: Whether the sampler draws without replacement; then it cannot
        draw more distinct classes than exist.

    Returns:
      int: ``num_sampled``.

    Raises:
      TypeError, ValueError: as described above.
    """
    num_sampled = check_int(num_sampled, "num_sampled")
    if unique and num_sampled > num_classes:
        raise ValueError(
            f"`num_sampled` must be <= `num_classes` ({num_classes}) when sampling unique "
            f"candidates, got num_sampled={num_sampled}."
        )
    return num_sampled


def check_partition_strategy(partition_strategy) -> str:
    """Returns ``partition_strategy`` after checking it is ``"mod"`` or ``"div"``."""
    return check_choice(partition_strategy, "partition_strategy", PARTITION_STRATEGIES)


def check_chunk_size(chunk_size) -> int | None:
    """Returns ``chunk_size`` (classes per block of the full losses): None or an int >= 1."""
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size")


def check_top_k(k, num_classes: int) -> int:
    """Returns ``k`` after checking it is an int in ``[1, num_classes]``."""
    k = check_int(k, "k")
    if k > num_classes:
        raise ValueError(f"`k` must be <= num_classes ({num_classes}), got k={k}.")
    return k


def check_inputs(inputs: tf.Tensor) -> tf.Tensor:
    """Checks ``inputs`` is a floating ``[batch_size, dim]`` tensor.

    A tensor of unknown rank gets a run-time rank check (and a static rank 2).

    Args:
      inputs: Tensor-like, the forward activations.

    Returns:
      tf.Tensor: ``inputs`` as a tensor.

    Raises:
      TypeError: ``inputs`` is not floating-point.
      ValueError: ``inputs`` is statically not of rank 2.
      tf.errors.InvalidArgumentError: (at run time) it is not of rank 2.
    """
    inputs = tf.convert_to_tensor(check_dense(inputs, "inputs"), name="inputs")
    if not inputs.dtype.is_floating:
        raise TypeError(f"`inputs` must be a floating-point tensor, got dtype {inputs.dtype.name}.")
    if inputs.shape.rank is None:
        # In the data path (grappler may run a matmul before a control-dependency
        # assert); the error reads "Shape of tensor inputs [...] is not compatible ...".
        return tf.ensure_shape(tf.identity(inputs, name="inputs"), [None, None])
    if inputs.shape.rank != 2:
        raise ValueError(f"`inputs` must have shape [batch_size, dim], got shape {inputs.shape}.")
    return inputs


def check_table(params, name: str, shape_text: str):
    """Returns ``params`` after checking it is given (not None): a class table.

    Raises:
      TypeError: ``params`` is None.
    """
    if params is None:
        raise TypeError(
            f"`{name}` must be a {shape_text} tensor, variable or list of shards, got None."
        )
    return params


def check_floating(dtype: tf.DType, name: str) -> tf.DType:
    """Returns ``dtype`` after checking it is a floating-point dtype.

    Raises:
      TypeError: ``dtype`` is not floating-point (TF would fail in a matmul).
    """
    if not tf.as_dtype(dtype).is_floating:
        raise TypeError(f"`{name}` must be floating-point, got dtype {tf.as_dtype(dtype).name}.")
    return dtype


def check_table_rows(
    name: str, sizes, num_classes: int, row_shape, row_rank: int, shape_text: str
) -> None:
    """Checks a class table's shard sizes add up to ``num_classes`` rows of the right rank.

    Args:
      name: The argument's name (``"weights"`` or ``"biases"``).
      sizes: Static row count of each shard.
      num_classes: The rows the table must hold.
      row_shape: ``tf.TensorShape`` of one row.
      row_rank: The rank a row must have (1 for weights, 0 for biases).
      shape_text: The expected table shape, e.g. ``"[num_classes, dim]"``.

    Raises:
      ValueError: the rows do not add up, or a row has the wrong rank.
    """
    sizes = list(sizes)
    if sum(sizes) != num_classes:
        what = "shard sizes" if len(sizes) > 1 else "first dimension"
        raise ValueError(
            f"`{name}` must have `num_classes` rows, got {what} {sizes} adding up to "
            f"{sum(sizes)} rows for num_classes={num_classes}."
        )
    if row_shape.rank != row_rank:
        raise ValueError(f"`{name}` must be {shape_text}, got rows of shape {row_shape}.")


def check_inputs_dim(inputs: tf.Tensor, dim) -> None:
    """Checks the last dimension of ``inputs`` against the ``weights`` dim, when both are known.

    Raises:
      ValueError: they differ.
    """
    got = inputs.shape[-1] if inputs.shape.rank else None
    if got is not None and dim is not None and got != dim:
        raise ValueError(
            f"`inputs` must have the `weights` dim {dim} as last dimension, got dim {got} "
            f"(inputs shape {inputs.shape})."
        )


def check_same_shards(weight_sizes, bias_sizes) -> None:
    """Checks ``biases`` are sharded as ``weights`` are.

    Raises:
      ValueError: the shard sizes differ.
    """
    if tuple(weight_sizes) != tuple(bias_sizes):
        raise ValueError(
            f"`biases` must have the shard sizes of `weights` {list(weight_sizes)}, got shard "
            f"sizes {list(bias_sizes)}."
        )


def check_num_resampled(num_resampled, num_sampled: int) -> int:
    """Returns ``num_resampled`` after checking ``1 <= num_resampled < num_sampled``.

    Raises:
      TypeError: not an integer.
      ValueError: out of range; the message starts with TF 1.x contrib's
        words, "num_resampled (N) must be less than num_sampled (M)".
    """
    num_resampled = check_int(num_resampled, "num_resampled")
    if num_resampled >= num_sampled:
        # TF 1.x contrib's words first, then ours.
        raise ValueError(
            f"num_resampled ({num_resampled}) must be less than num_sampled ({num_sampled}): "
            f"`num_resampled` must be less than `num_sampled`, got num_resampled={num_resampled}, "
            f"num_sampled={num_sampled}."
        )
    return num_resampled


def check_flag(value, name: str) -> bool:
    """Returns ``value`` as a bool: a Python/NumPy bool, or the integer 0 or 1.

    TF's functional losses read any truthy value as True; 0/1 stay meaningful,
    anything else (a string such as ``"no"``, a tensor) is an error.

    Raises:
      TypeError: any other value.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return check_bool(value, name)


def check_dense(value, name: str):
    """Returns ``value`` after checking it is not a ``tf.RaggedTensor``/``tf.SparseTensor``.

    Raises:
      TypeError: a ragged or sparse tensor (the losses need dense rows).
    """
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(
            f"`{name}` must be a dense tensor (convert it with .to_tensor() or "
            f"tf.sparse.to_dense), got a {type(value).__name__}."
        )
    return value


def static_or_dynamic_batch_size(inputs: tf.Tensor) -> int | tf.Tensor:
    """``inputs``' batch size: the static int when known, else a scalar int32 tensor."""
    static = inputs.shape[0] if inputs.shape.rank is not None else None
    return static if static is not None else tf.shape(inputs, out_type=tf.int32)[0]


def _assert_labels_shape(labels: tf.Tensor, num_true: int, batch_size) -> tf.Tensor:
    """Run-time check of a ``labels`` shape the graph could not settle; returns ``[batch, num_true]``."""
    shape = tf.shape(labels, out_type=tf.int32)
    rank = tf.size(shape)
    rank_ok = tf.equal(rank, 2)
    if num_true == 1:
        rank_ok = tf.logical_or(rank_ok, tf.equal(rank, 1))
    # A [batch] vector is read as [batch, 1]; pad so that any rank can be compared.
    leading = tf.concat([shape, [num_true, num_true]], 0)[:2]
    wanted = tf.stack([leading[0] if batch_size is None else batch_size, num_true])
    accepted = "[batch_size, num_true]" + (" or [batch_size]" if num_true == 1 else "")
    check = tf.raw_ops.Assert(
        condition=tf.logical_and(rank_ok, tf.reduce_all(tf.equal(leading, wanted))),
        data=[
            f"`labels` must have shape {accepted} with num_true={num_true} and the batch size "
            "of `inputs`, got shape",
            shape,
            "for an `inputs` batch size of",
            wanted[0],
        ],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        return tf.reshape(labels, [-1, num_true])


def normalize_labels(
    labels, num_true: int, num_classes: int, batch_size=None, check_range: bool = True
) -> tf.Tensor:
    """Validates ``labels`` and returns them as int64 ``[batch_size, num_true]``.

    Accepts ``[batch_size, num_true]``, and ``[batch_size]`` when ``num_true`` is
    1. Values outside ``[0, num_classes)`` fail at run time with an
    ``InvalidArgumentError`` (TF on GPU would silently gather zeros). A shape
    the graph leaves open (unknown batch size, ``num_true`` or rank) is checked
    when the graph runs, so labels and inputs of different batch sizes never
    broadcast into a wrong loss.

    Args:
      labels: Tensor-like class ids of any integer dtype (cast, as TF does),
        or of a floating dtype holding whole numbers (TF's own tests pass
        bfloat16 labels); see :func:`whole_number_labels`.
      num_true: Number of target classes per example.
      num_classes: Number of classes.
      batch_size: Batch size of ``inputs`` to match: an int, a scalar int32
        tensor (checked at run time), or None (not checked).
      check_range: Whether to attach the range check now; pass False to
        attach it later with :func:`assert_in_range`, where the labels index.

    Returns:
      tf.Tensor: int64 ``[batch_size, num_true]``.

    Raises:
      TypeError: ``labels`` is neither of an integer nor of a floating dtype.
      ValueError: the shape is neither of the accepted forms, the batch size
        differs from ``inputs``, or Python/NumPy float labels that are not
        whole numbers.
      tf.errors.InvalidArgumentError: (at run time) the same, for shapes only
        known then; float label tensors that are not whole numbers.
    """
    known = not (tf.is_tensor(labels) or isinstance(labels, tf.Variable))
    labels = tf.convert_to_tensor(check_dense(labels, "labels"), name="labels")
    if labels.dtype.is_floating:
        labels = whole_number_labels(labels, known)
    elif not labels.dtype.is_integer:
        raise TypeError(
            "`labels` must be integer class ids (or floats holding whole numbers), got dtype "
            f"{labels.dtype.name}."
        )
    static_batch = batch_size if isinstance(batch_size, int) else None
    rank = labels.shape.rank
    if rank == 1 and num_true == 1:
        labels = tf.expand_dims(labels, 1)
    elif rank is not None and (rank != 2 or labels.shape[1] not in (None, num_true)):
        accepted = "[batch_size, num_true]" + (" or [batch_size]" if num_true == 1 else "")
        raise ValueError(
            f"`labels` must have shape {accepted} with num_true={num_true}, got shape {labels.shape}."
        )
    if rank is not None and static_batch is not None and labels.shape[0] not in (None, static_batch):
        raise ValueError(
            f"`labels` must have the batch size of `inputs` ({static_batch}), got batch size "
            f"{labels.shape[0]} (shape {labels.shape})."
        )
    settled = rank is not None and labels.shape[1] is not None
    if batch_size is not None:
        settled = settled and static_batch is not None and labels.shape[0] is not None
    if not settled:
        labels = _assert_labels_shape(labels, num_true, batch_size)
    labels = tf.cast(labels, tf.int64)
    return assert_in_range(labels, num_classes, "labels") if check_range else labels


# Float labels at or beyond this magnitude are refused: below it every whole
# number casts to int64 exactly.
_FLOAT_LABEL_LIMIT = 2.0**62


def whole_number_labels(labels: tf.Tensor, known: bool = False) -> tf.Tensor:
    """Float ``labels`` as int64, after checking every value is a whole number.

    TensorFlow casts float labels and so truncates 3.7 to class 3 silently;
    here a whole number (3.0) is cast, anything else (3.7, NaN, inf, or a
    magnitude of 2^62 or more) is an error that quotes the value. Under XLA,
    where asserts are dropped, such a label becomes -1, an id out of range,
    so that the losses turn its row into NaN.

    Args:
      labels: float tensor of class ids, any shape.
      known: whether the values came from Python/NumPy (known when the graph
        is built: a ``ValueError`` then, as for other such arguments).

    Returns:
      tf.Tensor: int64 labels of the same shape.

    Raises:
      ValueError: a bad value in Python/NumPy labels.
      tf.errors.InvalidArgumentError: a bad value in a tensor (eagerly at
        once, in a graph when it runs).
    """
    message = (
        "`labels` given as floats must be whole-number class ids (they are cast, never "
        "truncated), got"
    )
    static = tf.get_static_value(labels) if known or tf.executing_eagerly() else None
    if static is not None:
        values = np.asarray(static, np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(values) & (values == np.floor(values)))
            bad |= ~(np.abs(values) < _FLOAT_LABEL_LIMIT)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            text = f"{message} labels{list(index)} = {float(values[index])!r}."
            if known:
                raise ValueError(text)
            raise tf.errors.InvalidArgumentError(None, None, text)
        return tf.cast(labels, tf.int64)
    values = tf.cast(labels, tf.float64)
    ok = tf.math.is_finite(values) & tf.equal(values, tf.floor(values))
    ok &= tf.abs(values) < _FLOAT_LABEL_LIMIT
    flat_bad = tf.reshape(tf.logical_not(ok), [-1])
    first = tf.argmax(tf.cast(flat_bad, tf.int32))
    check = tf.raw_ops.Assert(
        condition=tf.logical_not(tf.reduce_any(flat_bad)),
        data=[message, tf.gather(tf.reshape(labels, [-1]), first), "(the first such label)"],
        summarize=1,
    )
    with tf.control_dependencies([check]):
        return tf.cast(tf.where(ok, values, -1.0), tf.int64)


def assert_in_range(ids: tf.Tensor, num_classes: int, name: str) -> tf.Tensor:
    """Checks that int64 ``ids`` lie in ``[0, num_classes)``.

    Eagerly the values are checked at once; in a graph one assert op runs,
    and the returned ids are available only once it has passed.

    Raises:
      tf.errors.InvalidArgumentError: some id is out of range.
    """
    message = f"`{name}` must be class ids in [0, num_classes={num_classes}), got out-of-range ids"
    if tf.executing_eagerly():
        values = ids.numpy()
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise tf.errors.InvalidArgumentError(None, None, f"{message} {bad[:8].tolist()}.")
        return ids
    # As unsigned, a negative id wraps to a huge value, so one max-reduction
    # finds the worst id at either end; bitcast back, it is the value to quote.
    # Bitcasts copy nothing, and the raw Assert is one op that formats its data
    # only when it fails.
    worst = tf.reduce_max(tf.bitcast(ids, tf.uint64))
    check = tf.raw_ops.Assert(
        condition=worst < num_classes, data=[message, tf.bitcast(worst, tf.int64)], summarize=1
    )
    with tf.control_dependencies([check]):
        return tf.identity(ids)


def check_broadcasts_to(value: tf.Tensor, name: str, target: list, target_text: str) -> tf.Tensor:
    """Checks that ``value`` broadcasts to ``target`` without changing its shape.

    Every dimension of ``value`` (aligned right) must be 1 or the target's, so
    broadcasting it against a ``target``-shaped tensor gives that shape: never
    one silently grown from it, as in TF when a ``[batch, 2]`` expected count
    meets ``num_true=1``. What the graph cannot settle is checked at run time.

    Args:
      value: The tensor to check.
      name: The argument's name, quoted in the error.
      target: The target shape: ints, scalar int32 tensors for sizes only
        known at run time, or None for a dimension left unchecked.
      target_text: How the message names the target, e.g. ``"[batch_size, num_true]"``.

    Returns:
      tf.Tensor: ``value``, with the run-time check attached when one is needed.

    Raises:
      ValueError: the static shape cannot broadcast to ``target``.
      tf.errors.InvalidArgumentError: (at run time) the same.
    """
    static_target = [t if isinstance(t, int) else None for t in target]
    shape = value.shape
    settled = shape.rank is not None
    if settled:
        fits = shape.rank <= len(target)
        pairs = zip(reversed(shape.as_list()), reversed(target), strict=False)
        for dim, want in pairs:
            if want is None:
                continue  # unconstrained
            if dim is None or (not isinstance(want, int) and dim != 1):
                settled = False
            elif isinstance(want, int) and dim not in (1, want):
                fits = False
        if not fits:
            raise ValueError(
                f"`{name}` must broadcast to {target_text} = {static_target} (each dimension 1 or "
                f"that size), got shape {shape}."
            )
    if settled:
        return value
    actual = tf.shape(value, out_type=tf.int32)
    missing = tf.maximum(len(target) - tf.size(actual), 0)
    padded = tf.concat([tf.ones([missing], tf.int32), actual], 0)[-len(target) :]
    wanted = tf.stack(
        [padded[k] if t is None else tf.cast(t, tf.int32) for k, t in enumerate(target)]
    )
    ok = tf.logical_and(
        tf.size(actual) <= len(target),
        tf.reduce_all(tf.logical_or(tf.equal(padded, 1), tf.equal(padded, wanted))),
    )
    check = tf.raw_ops.Assert(
        condition=ok,
        data=[
            f"`{name}` must broadcast to {target_text} =",
            wanted,
            "(each dimension 1 or that size), got shape",
            actual,
        ],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        return tf.identity(value)


def check_expected_counts(value, name: str) -> tf.Tensor:
    """Checks that expected counts are positive and finite, as ``log`` needs.

    A zero, negative, NaN or infinite count makes ``-log(count)`` a NaN or
    infinite logit and the loss NaN; TF computes it silently.

    Args:
      value: Real tensor-like of expected counts (any shape).
      name: The argument's name, quoted in the error.

    Returns:
      tf.Tensor: ``value`` as a tensor, with the run-time check attached in a
      graph.

    Raises:
      TypeError: ``value`` is not real-valued (or is boolean).
      ValueError: a Python/NumPy ``value`` holds a bad count.
      tf.errors.InvalidArgumentError: a tensor holds a bad count (eagerly at
        once, in a graph when it runs).
    """
    tensor = tf.convert_to_tensor(value)
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(
            f"`{name}` must be real-valued expected counts, got dtype {tensor.dtype.name}."
        )
    message = f"`{name}` must be positive and finite expected counts, got"
    # Python/NumPy values are known when the graph is built; tensors are not.
    static = None
    if not (tf.is_tensor(value) or isinstance(value, tf.Variable)):
        static = tf.get_static_value(tensor)
    known = static is not None
    if known or tf.executing_eagerly():
        counts = np.asarray(static if known else tensor.numpy()).astype(np.float64)
        bad = counts[~((counts > 0) & (counts < np.inf))]
        if bad.size:
            text = f"{message} {bad[:8].tolist()} (shape {tensor.shape})."
            if known:
                raise ValueError(text)
            raise tf.errors.InvalidArgumentError(None, None, text)
        return tensor
    as_float = tf.cast(tensor, tf.float32) if tensor.dtype.is_integer else tensor
    ok = tf.logical_and(as_float > 0, as_float < np.inf)  # NaN fails both
    check = tf.raw_ops.Assert(
        condition=tf.reduce_all(ok),
        data=[message, tf.boolean_mask(tf.reshape(tensor, [-1]), tf.reshape(~ok, [-1]))],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def check_sampled_values(
    sampled_values,
    num_sampled: int,
    num_true: int,
    num_classes: int,
    batch_size=None,
    check_counts: bool = True,
):
    """Validates a caller-supplied ``(sampled, true_expected, sampled_expected)`` triple.

    Accepts what TensorFlow's losses meaningfully accept: Python lists, NumPy
    arrays or tensors; integer ids of any integer dtype; expected counts that
    broadcast against the logits (TF's own tests pass ``[batch_size, 1]`` true
    expected counts with ``num_true`` > 1); candidates of a static length other
    than ``num_sampled`` (TensorFlow reads the candidates and ignores
    ``num_sampled``): the candidates win, with a warning. Rejects what TF would
    turn into a silently wrong loss: counts that would grow the logits' shape,
    and counts that are not positive and finite.

    Args:
      sampled_values: The triple a ``*_candidate_sampler`` returns.
      num_sampled: The caller's ``num_sampled``: the expected length of the
        candidates, replaced by their static length when that differs. A
        length only known at run time must equal it (checked then).
      num_true: Number of true classes per example.
      num_classes: Candidates must lie in ``[0, num_classes)``.
      batch_size: Batch size of ``inputs``: an int, a scalar int32 tensor, or
        None (then the batch dimension of the counts is checked against
        nothing).
      check_counts: Whether the counts must be positive and finite (they are
        unused, so unchecked, when the logits are not corrected by them).

    Returns:
      tuple: ``(sampled int64 [num_sampled], true_expected_count broadcasting
      to [batch_size, num_true], sampled_expected_count [num_sampled] or
      [1 or batch_size, num_sampled])`` as tensors, ``num_sampled`` being the
      candidates' length (static).

    Raises:
      TypeError: ids that are not integers, counts that are not real.
      ValueError: a wrong structure or shape, or bad Python/NumPy counts.
      tf.errors.InvalidArgumentError: (at run time) ids outside
        ``[0, num_classes)``, bad counts, or shapes only then known to be wrong.
    """
    if not isinstance(sampled_values, (tuple, list)) or len(sampled_values) != 3:
        raise ValueError(
            "`sampled_values` must be a (sampled_candidates, true_expected_count, "
            f"sampled_expected_count) triple, got {sampled_values!r}."
        )
    sampled = tf.convert_to_tensor(sampled_values[0])
    if not sampled.dtype.is_integer:
        raise TypeError(
            f"`sampled_values[0]` (sampled_candidates) must be integer, got dtype {sampled.dtype.name}."
        )
    if sampled.shape.rank is not None and sampled.shape.rank != 1:
        raise ValueError(
            f"`sampled_values[0]` (sampled_candidates) must have shape [num_sampled] = "
            f"[{num_sampled}], got shape {sampled.shape}."
        )
    if sampled.shape.rank == 1 and sampled.shape[0] not in (None, num_sampled):
        warnings.warn(
            f"`num_sampled`={num_sampled} differs from the {sampled.shape[0]} candidates in "
            "`sampled_values[0]`; the candidates are used (TensorFlow ignores num_sampled "
            "when sampled_values are given).",
            UserWarning,
            stacklevel=2,
        )
        num_sampled = sampled.shape[0]
    if not sampled.shape.is_fully_defined():
        check = tf.raw_ops.Assert(
            condition=tf.logical_and(
                tf.equal(tf.rank(sampled), 1), tf.equal(tf.size(sampled), num_sampled)
            ),
            data=[
                "`sampled_values[0]` (sampled_candidates) must have shape [num_sampled] = "
                f"[{num_sampled}], got shape",
                tf.shape(sampled),
            ],
            summarize=8,
        )
        with tf.control_dependencies([check]):
            sampled = tf.reshape(sampled, [num_sampled])
    true_expected, sampled_expected = sampled_values[1:]
    if check_counts:
        true_expected = check_expected_counts(
            true_expected, "sampled_values[1] (true_expected_count)"
        )
        sampled_expected = check_expected_counts(
            sampled_expected, "sampled_values[2] (sampled_expected_count)"
        )
    true_expected = tf.convert_to_tensor(true_expected)
    true_expected = check_broadcasts_to(
        true_expected,
        "sampled_values[1] (true_expected_count)",
        [batch_size, num_true],
        f"[batch_size, num_true={num_true}]",
    )
    sampled_expected = _sampled_counts(
        tf.convert_to_tensor(sampled_expected), num_sampled, batch_size
    )
    sampled = assert_in_range(tf.cast(sampled, tf.int64), num_classes, "sampled_values[0]")
    return sampled, true_expected, sampled_expected


def _sampled_counts(counts: tf.Tensor, num_sampled: int, batch_size) -> tf.Tensor:
    """Checks sampled expected counts and gives them a ``num_sampled`` last dimension.

    Rank <= 1 (one count per candidate, or one for all) becomes ``[num_sampled]``;
    rank 2 (per example, as TF allows) becomes ``[rows, num_sampled]`` with
    ``rows`` 1 or the batch size.
    """
    name = "sampled_values[2] (sampled_expected_count)"
    if counts.shape.rank == 2:
        rows = counts.shape[0] if counts.shape[0] == 1 else batch_size
        counts = check_broadcasts_to(
            counts,
            name,
            [rows, num_sampled],
            f"[batch_size, num_sampled={num_sampled}] or [num_sampled]",
        )
        if counts.shape[1] != num_sampled:
            rows_now = counts.shape[0]
            if rows_now is None:
                rows_now = tf.shape(counts, out_type=tf.int32)[0]
            counts = tf.broadcast_to(counts, tf.stack([rows_now, num_sampled]))
        return counts
    counts = check_broadcasts_to(counts, name, [num_sampled], f"[num_sampled={num_sampled}]")
    if counts.shape.rank is None or counts.shape != [num_sampled]:
        counts = tf.broadcast_to(counts, [num_sampled])
    return counts


def check_bool(value, name: str) -> bool:
    """Returns ``value`` after checking it is a Python or NumPy bool.

    Raises:
      TypeError: ``value`` is not a bool (TF would read 0/1 or a string as one).
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be a bool, got {value!r} of type {type(value).__name__}.")
    return bool(value)


def check_seed(seed) -> int | None:
    """Returns ``seed`` after checking it is None or an int64 integer (an op-level seed).

    Raises:
      TypeError: ``seed`` is neither None nor a Python/NumPy integer.
      ValueError: ``seed`` does not fit in an int64 (TensorFlow's seed attrs
        and the compilable samplers' stream key are int64).
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be None or a Python int, got {seed!r}.")
    seed = int(seed)
    if not -(2**63) <= seed <= INT64_MAX:
        raise ValueError(f"`seed` must fit in an int64, [-2^63, 2^63 - 1], got seed={seed}.")
    return seed


def check_at_most(value: int, name: str, maximum: int, why: str) -> int:
    """Returns the (already checked) int ``value`` after checking ``value <= maximum``.

    Args:
      value: int.
      name: The argument's name, quoted in the error.
      maximum: Largest allowed value.
      why: Short reason for the limit, quoted in the error.

    Raises:
      ValueError: ``value > maximum``.
    """
    if value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum} ({why}), got {name}={value}.")
    return value


def check_sample_size(num_sampled: int, unique: bool, range_max: int) -> None:
    """Checks that ``num_sampled`` distinct classes exist when ``unique``.

    Raises:
      ValueError: ``unique`` and ``num_sampled > range_max``.
    """
    if unique and num_sampled > range_max:
        raise ValueError(
            "`num_sampled` must be <= `range_max` when unique=True (there are only range_max "
            f"distinct classes), got num_sampled={num_sampled} and range_max={range_max}."
        )


INT64_MAX = 2**63 - 1


# The learned-unigram op's limits: int64 attrs, and TensorFlow's samplers hold
# num_sampled in an int32.
MAX_NUM_SAMPLED = 2**31 - 1


def check_sampler_args(num_true, num_sampled, unique, range_max, seed=None) -> tuple:
    """Checks the arguments of a learned-unigram sampling call.

    Returns:
      tuple: ``(num_true, num_sampled, unique, range_max, seed)`` as ints,
      bool and int-or-None.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    num_true = check_at_most(check_int(num_true, "num_true"), "num_true", INT64_MAX, "an int64")
    num_sampled = check_at_most(
        check_int(num_sampled, "num_sampled"),
        "num_sampled",
        MAX_NUM_SAMPLED,
        "TensorFlow's samplers hold it in an int32",
    )
    range_max = check_at_most(check_int(range_max, "range_max"), "range_max", INT64_MAX, "an int64")
    unique = check_bool(unique, "unique")
    check_sample_size(num_sampled, unique, range_max)
    return num_true, num_sampled, unique, range_max, check_seed(seed)


def check_true_classes(true_classes, num_true: int) -> tf.Tensor:
    """Returns a sampler's ``true_classes`` as int64 ``[batch_size, num_true]``.

    Args:
      true_classes: Integer tensor-like ``[batch_size, num_true]``; other
        integer dtypes are cast to int64.
      num_true: int, the expected number of columns.

    Returns:
      tf.Tensor: int64 ``[batch_size, num_true]``.

    Raises:
      TypeError: ``true_classes`` is not of an integer dtype.
      ValueError: its static shape is not ``[batch_size, num_true]``.
    """
    tensor = tf.convert_to_tensor(true_classes)
    if not tensor.dtype.is_integer:
        raise TypeError(
            "`true_classes` must be an integer (int64) tensor of class ids, got dtype "
            f"{tensor.dtype.name}."
        )
    if not tensor.shape.is_compatible_with([None, num_true]):
        need = (
            f"have num_true={num_true} columns"
            if tensor.shape.rank == 2
            else "be a matrix [batch_size, num_true]"
        )
        raise ValueError(f"`true_classes` must {need}, got shape {tensor.shape}.")
    if tensor.dtype == tf.uint64:
        # Cast, 2^63 and above would be quoted as negative ids.
        check = tf.debugging.assert_less_equal(
            tensor, tf.constant(INT64_MAX, tf.uint64), message="`true_classes` must be < 2^63"
        )
        with tf.control_dependencies([check]):
            tensor = tf.identity(tensor)
    return tf.cast(tensor, tf.int64) if tensor.dtype != tf.int64 else tensor


#: Most rejection draws a unique sample of a fixed distribution may need at
#: worst (about a minute of TensorFlow's sampler).
MAX_UNIQUE_DRAWS = 2**32


def check_unique_draws(num_sampled: int, worst_draws: float) -> None:
    """Refuses a unique sample whose rejection sampling could take forever.

    Args:
      num_sampled: int, the sample size.
      worst_draws: Expected rejection draws if the heaviest classes are
        picked first (the likely order when the weights are skewed).

    Raises:
      ValueError: ``worst_draws > MAX_UNIQUE_DRAWS``.
    """
    if worst_draws > MAX_UNIQUE_DRAWS:
        raise ValueError(
            f"`num_sampled` must be small enough for unique rejection sampling of these weights "
            f"to end (at most 2^32 expected draws), got num_sampled={num_sampled}, which may "
            f"need about {worst_draws:.3g} draws: the classes left after the "
            f"{num_sampled - 1} heaviest hold too little weight. Use unique=False or fewer "
            "samples."
        )


def check_counts(counts, range_max: int) -> tf.Tensor:
    """Returns learned-unigram ``counts`` as int64 ``[range_max]`` after checking them.

    Integers of any dtype are taken as they are; floats only when every value
    is a finite whole number below 2^63 (a plain cast would truncate 1.7 to 1
    and turn NaN into -2^63). Eager values are checked now, graph values by an
    assert that runs before the result is available. Signs, the length of an
    unknown-length tensor and the total are checked by the op that encodes
    the counts.

    Args:
      counts: Tensor-like ``[range_max]`` of non-negative counts.
      range_max: int, the expected length.

    Returns:
      tf.Tensor: int64 ``[range_max]`` (or ``[None]`` in a graph).

    Raises:
      TypeError: a dtype that is neither integer nor floating (strings, bools).
      ValueError: values that cannot form an int64 tensor, a float that is not
        a finite whole number (eagerly), or a static shape other than
        ``[range_max]``.
      tf.errors.InvalidArgumentError: (in a graph, at run time) such a float,
        or a uint64 value >= 2^63.
    """
    try:
        tensor = tf.convert_to_tensor(counts)
    except (ValueError, TypeError, OverflowError) as err:
        raise ValueError(
            f"`counts` must be non-negative int64 counts of shape [{range_max}], got values "
            f"that do not convert: {err}"
        ) from err
    if tensor.dtype == tf.bool or not (tensor.dtype.is_integer or tensor.dtype.is_floating):
        raise TypeError(
            f"`counts` must be integer (or whole-number float) counts, got dtype {tensor.dtype.name}."
        )
    if tensor.shape.rank is not None and not tensor.shape.is_compatible_with([range_max]):
        raise ValueError(
            f"`counts` must have shape [range_max] = [{range_max}], got shape {tensor.shape}."
        )
    if tensor.dtype == tf.int64:
        return tensor
    if tensor.dtype.is_floating:
        values = tf.cast(tensor, tf.float64)
        bad = tf.logical_not(
            tf.logical_and(tf.math.is_finite(values), tf.equal(values, tf.floor(values)))
        ) | (values >= 2.0**63)
        what = "finite whole numbers below 2^63"
    elif tensor.dtype == tf.uint64:
        bad = tensor > INT64_MAX
        what = "below 2^63"
    else:
        return tf.cast(tensor, tf.int64)
    message = f"`counts` must be {what}; first bad (index, value):"
    if tf.executing_eagerly():
        where = tf.where(bad)
        if where.shape[0]:
            index = int(where[0][0])
            raise ValueError(f"{message} ({index}, {tensor[index].numpy()}).")
        return tf.cast(tensor, tf.int64)
    first = tf.argmax(tf.cast(bad, tf.int32))
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)), [message, first, tf.gather(tensor, first)]
    )
    with tf.control_dependencies([check]):
        return tf.cast(tensor, tf.int64)


def check_unigrams(unigrams, distortion, source: str = "unigrams") -> tuple[list[float], int]:
    """Checks fixed-unigram weights the way TensorFlow's sampler will use them.

    TensorFlow samples class ``i`` with probability proportional to
    ``float32(unigrams[i]) ** distortion`` (in float32) and never checks them:
    all-zero, NaN or infinite weights, or a distortion that overflows or
    underflows them all, give NaN expected counts or a sampler that never
    returns.

    Args:
      unigrams: Sequence of non-negative counts or probabilities.
      distortion: Real number, the exponent.
      source: Where the values came from, quoted in errors (``"unigrams"`` or
        ``"vocab_file '...'"``).

    Returns:
      tuple: ``(unigrams as floats, number of classes of positive weight)``.

    Raises:
      TypeError: ``distortion`` is not a real number.
      ValueError: a value that is negative, NaN or infinite (in float32), a
        NaN/infinite ``distortion``, or distorted weights that are not all
        finite or whose sum is not a positive finite float32.
    """
    if not isinstance(distortion, numbers.Real) or isinstance(distortion, bool):
        raise TypeError(f"`distortion` must be a float, got {distortion!r}.")
    if not math.isfinite(distortion):
        raise ValueError(f"`distortion` must be finite, got distortion={distortion!r}.")
    try:
        values = [float(u) for u in unigrams]
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{source}` must be a sequence of numbers, got {err}.") from None
    as_float32 = np.asarray(values, np.float32)
    bad = np.flatnonzero(~np.isfinite(as_float32) | (as_float32 < 0))
    if bad.size:
        raise ValueError(
            f"`{source}` must be non-negative finite float32 values, got "
            f"{values[bad[0]]!r} at index {bad[0]}."
        )
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        weights = np.power(as_float32, np.float32(distortion))
    bad = np.flatnonzero(~np.isfinite(weights))
    total = float(np.sum(weights, dtype=np.float64))
    if bad.size or not 0 < total <= float(np.finfo(np.float32).max):
        detail = (
            f"{values[bad[0]]!r} ** {distortion!r} at index {bad[0]} is not finite"
            if bad.size
            else f"their sum is {total!r}"
        )
        raise ValueError(
            f"`{source}` raised to `distortion` must be finite float32 weights with a positive "
            f"finite sum, got distortion={distortion!r}: {detail}."
        )
    return values, int(np.count_nonzero(weights))


def check_choice(value, name: str, choices: tuple) -> object:
    """Returns ``value`` after checking it is one of ``choices``.

    Raises:
      ValueError: ``value`` is not among ``choices``.
    """
    if isinstance(value, str | int | float | type(None)) and value in choices:
        return value
    raise ValueError(f"`{name}` must be one of {choices}, got {name}={value!r}.")


def check_sampling_options(
    num_classes, num_sampled, num_true, seed, unique: bool = True
) -> tuple[int, int, int, int | None]:
    """Validates the sampling options an output layer or a Keras loss holds.

    Stricter than the functional losses in one place: ``num_sampled`` must be
    *smaller* than ``num_classes`` for unique samplers, since drawing every
    class is a full softmax, only slower.

    Args:
      num_classes: int >= 2.
      num_sampled: int >= 1.
      num_true: int >= 1.
      seed: None or int >= 0.
      unique: bool, whether the sampler draws without replacement.

    Returns:
      tuple: ``(num_classes, num_sampled, num_true, seed)`` as ints/None.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    num_classes = check_int(num_classes, "num_classes", 2)
    num_sampled = check_int(num_sampled, "num_sampled", 1)
    if unique and num_sampled >= num_classes:
        raise ValueError(
            f"`num_sampled` must be smaller than `num_classes` when sampling unique classes, "
            f"got num_sampled={num_sampled}, num_classes={num_classes}. Sampling every class "
            "is the full softmax: use keras.layers.Dense instead."
        )
    num_true = check_int(num_true, "num_true", 1)
    if seed is not None:
        seed = check_int(seed, "seed", 0)
    return num_classes, num_sampled, num_true, seed


def check_resampling(num_resampled, num_sampled: int, resampling_temperature) -> tuple[int, float]:
    """Validates TAPAS' Python options: ``1 <= num_resampled < num_sampled``, temperature > 0.

    Returns:
      tuple: ``(num_resampled, resampling_temperature)`` as int and float.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    num_resampled = check_int(num_resampled, "num_resampled", 1)
    if num_resampled >= num_sampled:
        raise ValueError(
            f"`num_resampled` must be smaller than `num_sampled`, got "
            f"num_resampled={num_resampled}, num_sampled={num_sampled}."
        )
    if not isinstance(resampling_temperature, numbers.Real) or isinstance(
        resampling_temperature, bool
    ):
        raise TypeError(
            f"`resampling_temperature` must be a positive float, got {resampling_temperature!r}."
        )
    return num_resampled, check_resampling_temperature(resampling_temperature)


def check_resampling_temperature(resampling_temperature) -> float | tf.Tensor:
    """Validates the resampling temperature.

    A Python (or NumPy) number is checked now; a tensor or variable gets a
    run-time check, so a temperature annealed in a variable is read on every
    call and checked on every call.

    Args:
      resampling_temperature: Python/NumPy real number, or a scalar real
        ``tf.Tensor``/``tf.Variable``/``keras.Variable``.

    Returns:
      float | tf.Tensor: the number as a ``float``, or the scalar tensor with
      the run-time check attached.

    Raises:
      TypeError: a bool, or a tensor that is not real-valued.
      ValueError: a number that is not positive and finite, or a tensor that is
        statically not a scalar.
      tf.errors.InvalidArgumentError: (at run time) a tensor value that is not
        positive and finite.
    """
    if isinstance(resampling_temperature, bool):
        raise TypeError(
            "`resampling_temperature` must be a positive number or scalar tensor, got the bool "
            f"{resampling_temperature!r}."
        )
    if isinstance(resampling_temperature, numbers.Real):
        value = float(resampling_temperature)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                "`resampling_temperature` must be a positive finite number, got "
                f"{resampling_temperature!r}."
            )
        return value
    temperature = tf.convert_to_tensor(resampling_temperature, name="resampling_temperature")
    if not (temperature.dtype.is_floating or temperature.dtype.is_integer):
        raise TypeError(
            "`resampling_temperature` must be a real scalar, got a tensor of dtype "
            f"{temperature.dtype.name}."
        )
    if temperature.shape.rank is not None and temperature.shape.rank != 0:
        raise ValueError(
            f"`resampling_temperature` must be a scalar, got shape {temperature.shape}."
        )
    as_float = tf.cast(temperature, tf.float64)
    check = tf.debugging.Assert(
        tf.logical_and(as_float > 0, tf.math.is_finite(as_float)),
        ["`resampling_temperature` must be positive and finite, got", temperature],
        name="check_resampling_temperature",
    )
    with tf.control_dependencies([check]):
        return tf.identity(temperature)
