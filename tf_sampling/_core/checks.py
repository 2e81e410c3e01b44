"""The primitive argument checks every part of the package builds on.

One message style, Keras' own: "Argument `name` must be <what it must be>.
Received: name=<the value>" (or, where the value does not print, what was
received: a dtype, a shape, a type). Errors known when the graph is built
are ``ValueError``/``TypeError``; values only known at run time fail a
``tf.debugging`` assert (``tf.errors.InvalidArgumentError``).

The checks of one owner live beside it: the functional losses' arguments in
``loss_args``, the ``sampled_values`` triple in ``sampled_values``, the
samplers' arguments in ``sampler_args``, Keras options in
``tf_sampling._keras.options``, the optimizers' in ``tf_sampling.optimizers``.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

#: Largest int64: TensorFlow's seed attrs, counts and sampler totals are int64.
INT64_MAX = 2**63 - 1


def check_int(value, name: str, minimum: int = 1) -> int:
    """Returns ``value`` as an ``int`` after checking it is an integer >= ``minimum``.

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
            f"Argument `{name}` must be a Python int. Received: {name}={value!r} of type "
            f"{type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value}"
        )
    return int(value)


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
        raise ValueError(
            f"Argument `{name}` must be <= {maximum} ({why}). Received: {name}={value}"
        )
    return value


def check_bool(value, name: str) -> bool:
    """Returns ``value`` after checking it is a Python or NumPy bool.

    Raises:
      TypeError: ``value`` is not a bool (TF would read 0/1 or a string as one).
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(
            f"Argument `{name}` must be a bool. Received: {name}={value!r} of type "
            f"{type(value).__name__}"
        )
    return bool(value)


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


def check_choice(value, name: str, choices: tuple) -> object:
    """Returns ``value`` after checking it is one of ``choices``.

    Raises:
      ValueError: ``value`` is not among ``choices``.
    """
    if isinstance(value, str | int | float | type(None)) and value in choices:
        return value
    raise ValueError(f"Argument `{name}` must be one of {choices}. Received: {name}={value!r}")


def check_dense(value, name: str):
    """Returns ``value`` after checking it is not a ``tf.RaggedTensor``/``tf.SparseTensor``.

    Raises:
      TypeError: a ragged or sparse tensor (the losses need dense rows).
    """
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(
            f"Argument `{name}` must be a dense tensor (convert it with .to_tensor() or "
            f"tf.sparse.to_dense). Received: a {type(value).__name__}"
        )
    return value


def check_floating(dtype: tf.DType, name: str) -> tf.DType:
    """Returns ``dtype`` after checking it is a floating-point dtype.

    Raises:
      TypeError: ``dtype`` is not floating-point (TF would fail in a matmul).
    """
    if not tf.as_dtype(dtype).is_floating:
        raise TypeError(
            f"Argument `{name}` must be floating-point. Received: {name}.dtype="
            f"{tf.as_dtype(dtype).name}"
        )
    return dtype


def assert_in_range(ids: tf.Tensor, num_classes: int, name: str) -> tf.Tensor:
    """Checks that int64 ``ids`` lie in ``[0, num_classes)``.

    Eagerly the values are checked at once; in a graph one assert op runs,
    and the returned ids are available only once it has passed.

    Raises:
      tf.errors.InvalidArgumentError: some id is out of range.
    """
    message = (
        f"Argument `{name}` must be class ids in [0, num_classes={num_classes}). Received: "
        "out-of-range ids"
    )
    if tf.executing_eagerly():
        values = ids.numpy()
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise tf.errors.InvalidArgumentError(None, None, f"{message} {bad[:8].tolist()}")
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
