"""The functional losses' own arguments: sizes, tables, inputs, labels, TAPAS' options.

Messages in Keras' words (see ``checks``). ``sampled_values`` has its own
module; the primitives (``check_int``, ``assert_in_range``...) are in
``checks``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from tf_sampling._core.checks import assert_in_range, check_choice, check_dense, check_int

PARTITION_STRATEGIES = ("mod", "div")


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
            f"Argument `num_sampled` must be <= `num_classes` ({num_classes}) when sampling "
            f"unique candidates. Received: num_sampled={num_sampled}"
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
        raise ValueError(f"Argument `k` must be <= num_classes ({num_classes}). Received: k={k}")
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
        raise TypeError(
            "Argument `inputs` must be a floating-point tensor. Received: "
            f"inputs.dtype={inputs.dtype.name}"
        )
    if inputs.shape.rank is None:
        # In the data path (grappler may run a matmul before a control-dependency
        # assert); the error reads "Shape of tensor inputs [...] is not compatible ...".
        return tf.ensure_shape(tf.identity(inputs, name="inputs"), [None, None])
    if inputs.shape.rank != 2:
        raise ValueError(
            "Argument `inputs` must have shape [batch_size, dim]. Received: "
            f"inputs.shape={inputs.shape}"
        )
    return inputs


def check_inputs_dim(inputs: tf.Tensor, dim) -> None:
    """Checks the last dimension of ``inputs`` against the ``weights`` dim, when both are known.

    Raises:
      ValueError: they differ.
    """
    got = inputs.shape[-1] if inputs.shape.rank else None
    if got is not None and dim is not None and got != dim:
        raise ValueError(
            f"Argument `inputs` must have the `weights` dim {dim} as last dimension. Received: "
            f"inputs.shape={inputs.shape} (dim {got})"
        )


def check_table(params, name: str, shape_text: str):
    """Returns ``params`` after checking it is given (not None): a class table.

    Raises:
      TypeError: ``params`` is None.
    """
    if params is None:
        raise TypeError(
            f"Argument `{name}` must be a {shape_text} tensor, variable or list of shards. "
            f"Received: {name}=None"
        )
    return params


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
            f"Argument `{name}` must have `num_classes` rows. Received: {what} {sizes} adding "
            f"up to {sum(sizes)} rows for num_classes={num_classes}"
        )
    if row_shape.rank != row_rank:
        raise ValueError(
            f"Argument `{name}` must be {shape_text}. Received: rows of shape {row_shape}"
        )


def check_same_shards(weight_sizes, bias_sizes) -> None:
    """Checks ``biases`` are sharded as ``weights`` are.

    Raises:
      ValueError: the shard sizes differ.
    """
    if tuple(weight_sizes) != tuple(bias_sizes):
        raise ValueError(
            f"Argument `biases` must have the shard sizes of `weights` {list(weight_sizes)}. "
            f"Received: shard sizes {list(bias_sizes)}"
        )


def static_or_dynamic_batch_size(inputs: tf.Tensor) -> int | tf.Tensor:
    """``inputs``' batch size: the static int when known, else a scalar int32 tensor."""
    static = inputs.shape[0] if inputs.shape.rank is not None else None
    return static if static is not None else tf.shape(inputs, out_type=tf.int32)[0]


def _accepted_label_shapes(num_true: int) -> str:
    return "[batch_size, num_true]" + (" or [batch_size]" if num_true == 1 else "")


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
    check = tf.raw_ops.Assert(
        condition=tf.logical_and(rank_ok, tf.reduce_all(tf.equal(leading, wanted))),
        data=[
            f"Argument `labels` must have shape {_accepted_label_shapes(num_true)} with "
            f"num_true={num_true} and the batch size of `inputs`. Received: labels of shape",
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
        attach it later with :func:`~tf_sampling._core.checks.assert_in_range`,
        where the labels index.

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
            "Argument `labels` must be integer class ids (or floats holding whole numbers). "
            f"Received: labels.dtype={labels.dtype.name}"
        )
    static_batch = batch_size if isinstance(batch_size, int) else None
    rank = labels.shape.rank
    if rank == 1 and num_true == 1:
        labels = tf.expand_dims(labels, 1)
    elif rank is not None and (rank != 2 or labels.shape[1] not in (None, num_true)):
        raise ValueError(
            f"Argument `labels` must have shape {_accepted_label_shapes(num_true)} with "
            f"num_true={num_true}. Received: labels.shape={labels.shape}"
        )
    if (
        rank is not None
        and static_batch is not None
        and labels.shape[0] not in (None, static_batch)
    ):
        raise ValueError(
            f"Argument `labels` must have the batch size of `inputs` ({static_batch}). Received: "
            f"labels.shape={labels.shape} (batch size {labels.shape[0]})"
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
        "Argument `labels` given as floats must be whole-number class ids (they are cast, "
        "never truncated). Received:"
    )
    static = tf.get_static_value(labels) if known or tf.executing_eagerly() else None
    if static is not None:
        values = np.asarray(static, np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(values) & (values == np.floor(values)))
            bad |= ~(np.abs(values) < _FLOAT_LABEL_LIMIT)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            text = f"{message} labels{list(index)} = {float(values[index])!r}"
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
            f"num_resampled ({num_resampled}) must be less than num_sampled ({num_sampled}). "
            "Argument `num_resampled` must be less than `num_sampled`. Received: "
            f"num_resampled={num_resampled}, num_sampled={num_sampled}"
        )
    return num_resampled


def check_resampling_temperature(resampling_temperature) -> float | tf.Tensor:
    """Validates TAPAS' resampling temperature.

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
            "Argument `resampling_temperature` must be a positive number or scalar tensor. "
            f"Received: resampling_temperature={resampling_temperature!r} (a bool)"
        )
    if isinstance(resampling_temperature, numbers.Real):
        value = float(resampling_temperature)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                "Argument `resampling_temperature` must be a positive finite number. Received: "
                f"resampling_temperature={resampling_temperature!r}"
            )
        return value
    temperature = tf.convert_to_tensor(resampling_temperature, name="resampling_temperature")
    if not (temperature.dtype.is_floating or temperature.dtype.is_integer):
        raise TypeError(
            "Argument `resampling_temperature` must be a real scalar. Received: "
            f"resampling_temperature.dtype={temperature.dtype.name}"
        )
    if temperature.shape.rank is not None and temperature.shape.rank != 0:
        raise ValueError(
            "Argument `resampling_temperature` must be a scalar. Received: "
            f"resampling_temperature.shape={temperature.shape}"
        )
    as_float = tf.cast(temperature, tf.float64)
    check = tf.debugging.Assert(
        tf.logical_and(as_float > 0, tf.math.is_finite(as_float)),
        [
            "Argument `resampling_temperature` must be positive and finite. Received:",
            temperature,
        ],
        name="check_resampling_temperature",
    )
    with tf.control_dependencies([check]):
        return tf.identity(temperature)
