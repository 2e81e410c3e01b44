"""The shared machinery of the lazy (sparse-update) optimizers.

Keras 3 hands an optimizer's ``update_step`` the ``tf.IndexedSlices`` gradient
of a gathered table as it is (only ``global_clipnorm`` densifies it before, and
``loss_scale_factor`` fails on it; Keras 3.15, see ``docs/optimizers.md``),
and then its built-in Adam, AdamW, momentum SGD, ... turn it into a dense
``[num_classes, dim]`` tensor, because they decay every row's slots each step.

:class:`LazyOptimizer` is the one base of this package's optimizers. It is
mixed in front of the Keras optimizer it makes lazy (``class LazyAdam(
LazyOptimizer, keras.optimizers.Adam)``), so that:

* a dense gradient goes to the Keras optimizer's own ``update_step``: results
  are Keras' bit for bit, including weight decay and clipping;
* an ``IndexedSlices`` gradient has its duplicate indices summed
  (:func:`sum_duplicates`; for an optimizer with a ``second_moment``, the
  squared term of each row in the same pass, see
  :func:`tf_sampling.optimizers.adam_rows.sum_lookups`), then the subclass's
  one varying piece, :meth:`LazyOptimizer._update_rows`, computes the new slot
  rows and the variable's decrement from the gathered rows; the base gathers
  the rows and scatters the results back, so only the touched rows are read or
  written.

The Keras options that act on gradients or weights are made sparse here too:
``clipnorm``/``clipvalue``/``global_clipnorm`` clip the summed rows (so the
norm is the dense gradient's), ``weight_decay`` decays the touched rows only,
and ``loss_scale_factor`` divides the slice values. ``use_ema`` and
``gradient_accumulation_steps`` cannot stay sparse and raise ``ValueError``.

A gradient whose shape does not fit its variable (an ``IndexedSlices`` whose
rows are not the variable's rows) raises on every path, instead of being
broadcast into the rows.
"""

from __future__ import annotations

import abc
import re

import keras
import tensorflow as tf

from tf_sampling.optimizers import _checks, adam_rows


def sum_duplicates(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """Sums the rows of an ``IndexedSlices`` that share an index.

    A gather that uses a class twice in a batch, and ``MirroredStrategy``'s
    all-gather of the replicas' slices, both give repeated indices; lazy
    updates need one row per index (a scatter would keep only one of them).

    Args:
      gradient: ``IndexedSlices`` with ``values`` ``[n, *row_shape]`` and
        ``indices`` ``[n]``.

    Returns:
      ``IndexedSlices`` with ``values`` ``[u, *row_shape]`` and unique
      ``indices`` ``[u]`` (in order of first appearance), ``u <= n``; the same
      ``dense_shape``. ``tf.convert_to_tensor`` of both is the same tensor.
    """
    unique_indices, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(
        gradient.values, positions, num_segments=tf.shape(unique_indices)[0]
    )
    return tf.IndexedSlices(values, unique_indices, gradient.dense_shape)


def _check_gradient_shape(gradient, variable, name: str):
    """``gradient``, checked to fit ``variable`` (an ``IndexedSlices``: by its rows).

    The row updates broadcast: a ``[n, 1]`` gradient for ``[rows, 3]`` rows
    would move all three columns by the one value. Static shapes are checked
    here (``ValueError``); dimensions known only at run time by
    ``tf.ensure_shape``, which XLA checks too when it compiles.

    Args:
      gradient: A dense gradient (the variable's shape) or ``IndexedSlices``
        with ``values`` ``[n, *row_shape]``.
      variable: The variable ``[num_rows, *row_shape]`` it updates.
      name: The variable's name for the messages.

    Returns:
      ``gradient``, with the run-time check attached where it is needed.

    Raises:
      ValueError: Statically known shapes that do not fit.
      tf.errors.InvalidArgumentError: (at run time) shapes that do not fit.
    """
    shape = tf.TensorShape(variable.shape)
    sparse = isinstance(gradient, tf.IndexedSlices)
    values = tf.convert_to_tensor(gradient.values if sparse else gradient)
    expected = tf.TensorShape([None]).concatenate(shape[1:]) if sparse else shape
    if not values.shape.is_compatible_with(expected):
        what = "the values of the IndexedSlices gradient" if sparse else "the gradient"
        need = f"[n, {', '.join(map(str, shape[1:]))}] (the variable's rows)" if sparse else shape
        raise ValueError(
            f"The gradient of variable '{name}' (shape {shape}) does not fit "
            f"it: {what} must have shape {need}, got shape {values.shape}."
        )
    if (
        values.shape.rank is not None
        and (values.shape[1:] if sparse else values.shape).is_fully_defined()
    ):
        return gradient  # every checked dimension was known, and fits
    name = "gradient_shape_of_" + re.sub(r"[^A-Za-z0-9_.]", "_", name)
    values = tf.ensure_shape(values, expected, name=name)
    return tf.IndexedSlices(values, gradient.indices, gradient.dense_shape) if sparse else values


def _map_values(gradient: tf.IndexedSlices, fn) -> tf.IndexedSlices:
    return tf.IndexedSlices(fn(gradient.values), gradient.indices, gradient.dense_shape)


def _tf_variable(variable):
    """The ``tf.Variable`` behind a Keras variable (gathers from it read only the rows)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


class LazyOptimizer(keras.optimizers.Optimizer, metaclass=abc.ABCMeta):
    """Base of the optimizers that update only the rows a sparse gradient touches.

    Subclasses list a Keras optimizer after this class and implement
    :meth:`_row_slots` and :meth:`_update_rows`; everything else (dense
    gradients, duplicate indices, clipping, weight decay, loss scaling,
    distribution) is shared.

    Raises:
      ValueError: at construction, for ``use_ema=True`` or a
        ``gradient_accumulation_steps``.
    """

    #: What the squared term of :meth:`_update_rows` is for a row looked up
    #: several times: ``"per_lookup"`` (the sum of the lookups' squares; clipping
    #: then keeps an ``IndexedSlices``' repeated indices), ``"summed"`` (the
    #: square of their sum), or None for an optimizer without one (no squared term).
    second_moment: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _checks.check_lazy_optimizer_options(
            type(self).__name__, self.use_ema, self.gradient_accumulation_steps
        )

    @property
    def _keeps_lookups(self) -> bool:
        return self.second_moment == "per_lookup"

    # ----------------------------------------------------------------- the varying piece
    @abc.abstractmethod
    def _row_slots(self, variable) -> list:
        """The slot variables of ``variable`` that a sparse step reads and rewrites by row.

        Args:
          variable: A trained variable ``[num_rows, *row_shape]``.

        Returns:
          list of optimizer variables of ``variable``'s shape (may be empty).
        """

    @abc.abstractmethod
    def _update_rows(
        self,
        gradient: tf.Tensor,
        squared: tf.Tensor | None,
        slot_rows: list,
        learning_rate: tf.Tensor,
    ) -> tuple[tf.Tensor, list]:
        """One step of the optimizer on the touched rows.

        Args:
          gradient: Summed gradient rows ``[u, *row_shape]``, in the variable's dtype.
          squared: Their squared term ``[u, *row_shape]`` as :attr:`second_moment`
            says (the sum of the lookups' squares, or ``gradient**2``); None
            when :attr:`second_moment` is None.
          slot_rows: The rows of :meth:`_row_slots`, each ``[u, *row_shape]``.
          learning_rate: Scalar learning rate in the variable's dtype.

        Returns:
          ``(decrement, new_slot_rows)``: ``[u, *row_shape]`` subtracted from the
          variable's rows, and the slots' new rows in :meth:`_row_slots` order.
        """

    def _catch_up_rows(self, variable, indices, shape, slot_rows: list, learning_rate) -> list:
        """Brings the touched rows up to the previous step before they are updated.

        The default keeps lazy semantics (nothing happens to a row while it is
        not touched). :class:`~tf_sampling.optimizers.LazyAdam` with
        ``catch_up=True`` overrides it.

        Args:
          variable: The trained variable.
          indices: Unique touched row ids ``[u]``.
          shape: The variable's dense shape.
          slot_rows: The gathered rows of :meth:`_row_slots`.
          learning_rate: Scalar learning rate in the variable's dtype.

        Returns:
          The slot rows to update from (the variable's rows may have been changed).
        """
        del variable, indices, shape, learning_rate
        return slot_rows

    def _variable_path(self, variable) -> str:
        """The Keras path of a trained variable (``update_step`` gets its ``tf.Variable``)."""
        try:
            return self._trainable_variables[self._get_variable_index(variable)].path
        except (KeyError, IndexError, AttributeError):
            return getattr(variable, "path", None) or getattr(variable, "name", "?")

    # ----------------------------------------------------------------- shared machinery
    def update_step(self, gradient, variable, learning_rate):
        """Applies one gradient: lazily by row for ``IndexedSlices``, as Keras for dense."""
        gradient = _check_gradient_shape(gradient, variable, self._variable_path(variable))
        if not isinstance(gradient, tf.IndexedSlices):
            return self._dense_step(gradient, variable, learning_rate)
        self._sparse_step(gradient, variable, learning_rate)
        return None

    def _dense_step(self, gradient, variable, learning_rate):
        """The Keras optimizer's own step, weight decay first (as Keras)."""
        self._decay_dense(variable, learning_rate)
        return super().update_step(gradient, variable, learning_rate)

    def _sparse_step(self, gradient: tf.IndexedSlices, variable, learning_rate) -> None:
        # One row per index: repeats come from the tape and MirroredStrategy's all-gather.
        squared = None
        if self.second_moment is None:
            gradient = sum_duplicates(gradient)
        else:
            gradient, squared = adam_rows.sum_lookups(gradient, self.second_moment, variable.dtype)
        indices, shape = gradient.indices, gradient.dense_shape
        lr = tf.cast(learning_rate, variable.dtype)
        slots = self._row_slots(variable)
        slot_rows = [tf.gather(_tf_variable(slot), indices) for slot in slots]
        slot_rows = self._catch_up_rows(variable, indices, shape, slot_rows, lr)
        self._decay_rows(variable, indices, shape, lr)
        values = tf.cast(gradient.values, variable.dtype)
        decrement, new_rows = self._update_rows(values, squared, slot_rows, lr)
        for slot, rows in zip(slots, new_rows, strict=True):
            self.assign(slot, tf.IndexedSlices(rows, indices, shape))
        self.assign_sub(variable, tf.IndexedSlices(decrement, indices, shape))

    def _apply_weight_decay(self, variables):
        # Keras decays every row of every variable here; the decay moves into
        # update_step, where the gradient says which rows this step touches.
        return None

    def _decays(self, variable) -> bool:
        """Whether ``variable`` gets decoupled weight decay."""
        return self.weight_decay is not None and self._use_weight_decay(variable)

    def _decay_dense(self, variable, learning_rate) -> None:
        # The same arithmetic and order as Keras' TensorFlow optimizer.
        if self._decays(variable):
            variable.assign_sub(adam_rows.decay(variable, learning_rate, self.weight_decay))

    def _decay_rows(self, variable, indices, shape, lr) -> None:
        if self._decays(variable):
            rows = tf.gather(_tf_variable(variable), indices)
            decrement = adam_rows.decay(rows, lr, self.weight_decay)
            self.assign_sub(variable, tf.IndexedSlices(decrement, indices, shape))

    def _clip_gradients(self, grads):
        if not any(isinstance(g, tf.IndexedSlices) for g in grads):
            return super()._clip_gradients(grads)
        clipping = (
            (self.clipnorm and self.clipnorm > 0)
            or (self.global_clipnorm and self.global_clipnorm > 0)
            or (self.clipvalue and self.clipvalue > 0)
        )
        if not clipping:
            return grads
        # Sum duplicates first, so that norms and values are the dense gradient's.
        summed = [sum_duplicates(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if not self._keeps_lookups:
            grads = summed
        if self.clipnorm and self.clipnorm > 0 and not self._keeps_lookups:
            return [g if g is None else tf.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.clipnorm and self.clipnorm > 0:
            # Each lookup's row scaled by the factor of the summed gradient's norm.
            return [
                g if g is None else _scaled(g, _norm_factor(_norm(s), self.clipnorm))
                for g, s in zip(grads, summed, strict=True)
            ]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return _clip_by_global_norm(grads, self.global_clipnorm, summed)
        v = self.clipvalue
        return [
            g
            if g is None
            else _map_values(g, lambda x: tf.clip_by_value(x, -v, v))
            if isinstance(g, tf.IndexedSlices)
            else keras.ops.clip(g, -v, v)
            for g in grads
        ]

    def apply(self, grads, trainable_variables=None):
        """Applies gradients; as Keras' ``apply``, but ``loss_scale_factor`` keeps slices sparse."""
        scale = self.loss_scale_factor
        if scale is None or not any(isinstance(g, tf.IndexedSlices) for g in grads):
            return super().apply(grads, trainable_variables)
        # Keras divides with `/`, which IndexedSlices does not support.
        grads = [
            g
            if g is None
            else _map_values(g, lambda x: x / scale)
            if isinstance(g, tf.IndexedSlices)
            else g / scale
            for g in grads
        ]
        self.loss_scale_factor = None
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self.loss_scale_factor = scale


def _squared_norm(gradient) -> tf.Tensor:
    """Squared L2 norm of a dense gradient or of the values of (summed) slices."""
    values = gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient
    return tf.reduce_sum(tf.square(tf.cast(values, tf.float32)))


def _norm(gradient) -> tf.Tensor:
    return tf.sqrt(_squared_norm(gradient))


def _norm_factor(norm: tf.Tensor, clip_norm: float) -> tf.Tensor:
    # tf.clip_by_norm's factor: 1 below clip_norm, clip_norm / norm above.
    return clip_norm / tf.maximum(norm, clip_norm)


def _scaled(gradient, factor: tf.Tensor):
    """``gradient * factor`` for a dense gradient or slices (which keep their indices)."""

    def scale(x):
        return x * tf.cast(factor, x.dtype)

    return (
        _map_values(gradient, scale) if isinstance(gradient, tf.IndexedSlices) else scale(gradient)
    )


def _clip_by_global_norm(grads: list, clip_norm: float, summed: list | None = None) -> list:
    """Keras' global-norm clipping of ``grads``, the norm read from the values of ``summed``.

    ``summed`` (default ``grads``) holds the same gradients with their slices'
    duplicate indices summed, so the norm is the dense gradients'.
    """
    summed = grads if summed is None else summed
    norm = tf.sqrt(tf.add_n([_squared_norm(g) for g in summed if g is not None]))
    # Keras' formula: a no-op for finite norms below clip_norm, NaN for non-finite ones.
    scale = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
    return [g if g is None else _scaled(g, scale) for g in grads]
