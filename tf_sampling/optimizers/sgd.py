"""Lazy momentum SGD and Adagrad: Keras' on dense gradients, row-sparse on ``IndexedSlices``."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling.optimizers import _checks
from tf_sampling.optimizers.base import LazyOptimizer


@keras.saving.register_keras_serializable(package="tf_sampling")
class LazySGD(LazyOptimizer, keras.optimizers.SGD):
    """SGD (with optional momentum) that updates only the rows a sparse gradient touches.

    On a dense gradient this is ``keras.optimizers.SGD``. On a
    ``tf.IndexedSlices`` gradient, duplicate indices are summed and the
    touched rows get Keras' update ``m = momentum * m - lr * g`` and
    ``w += m`` (``w += momentum * m - lr * g`` with ``nesterov``); untouched
    rows keep their weights and velocity (the velocity does not decay while
    a row is not touched). Plain SGD (``momentum=0``) is already sparse in
    Keras; here its duplicates are summed first.

    Args:
      learning_rate: float, schedule or callable. Defaults to 0.01.
      momentum: float >= 0.
      nesterov: Nesterov momentum.
      Other arguments: as :class:`tf_sampling.optimizers.LazyAdam`.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str = "lazy_sgd",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )

    def _row_slots(self, variable) -> list:
        if self.momentum == 0:
            return []
        return [self.momentums[self._get_variable_index(variable)]]

    def _update_rows(self, gradient, squared, slot_rows, learning_rate):
        del squared  # SGD has no second moment
        step = gradient * learning_rate
        if self.momentum == 0:
            return step, []
        momentum = tf.cast(self.momentum, gradient.dtype)
        m = slot_rows[0] * momentum - step
        increment = m * momentum - step if self.nesterov else m
        # w - (-x) is w + x exactly, so this is Keras' assign_add.
        return -increment, [m]


@keras.saving.register_keras_serializable(package="tf_sampling")
class LazyAdagrad(LazyOptimizer, keras.optimizers.Adagrad):
    """Adagrad that reads and writes only the rows a sparse gradient touches.

    Adagrad's accumulator does not decay, so lazy Adagrad on the touched rows
    is exactly Adagrad; ``keras.optimizers.Adagrad`` still computes
    ``sqrt(accumulator + epsilon)`` over the whole table each step, this
    class only over the touched rows. On dense gradients it is Keras' Adagrad.

    **Repeated rows** (``second_moment``). A batch that looks a row up ``n``
    times gives ``n`` slices ``g_i`` for it. The default, ``"per_lookup"``,
    is Keras' ``Adagrad``: the accumulator gets the sum of the lookups'
    squares ``sum_i g_i**2`` and the row moves by ``lr * g / sqrt(accumulator
    + epsilon)`` with ``g = sum_i g_i`` (equal to Keras' up to rounding: Keras
    adds the lookups one by one). ``"summed"`` squares the summed gradient,
    ``g**2``, as TF1's ``tf.compat.v1.train.AdagradOptimizer`` (which sums
    duplicate indices first). Rows looked up once are the same under both.

    Args:
      learning_rate: float, schedule or callable. Defaults to 0.001.
      initial_accumulator_value: Starting value of the accumulators.
      epsilon: Added to the accumulator under the square root.
      second_moment: ``"per_lookup"`` (default, Keras) or ``"summed"`` (TF1):
        what the accumulator gets for a row looked up several times in a batch.
      Other arguments: as :class:`tf_sampling.optimizers.LazyAdam` (with
        ``"per_lookup"``, ``clipvalue`` clips each lookup's row, as Keras).

    Raises:
      ValueError: ``second_moment`` not one of the two; see also
        :class:`~tf_sampling.optimizers.LazyOptimizer`.
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        second_moment: str = "per_lookup",
        name: str = "lazy_adagrad",
        **kwargs,
    ):
        second_moment = _checks.check_second_moment(second_moment)
        super().__init__(
            learning_rate=learning_rate,
            initial_accumulator_value=initial_accumulator_value,
            epsilon=epsilon,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.second_moment = second_moment

    def get_config(self) -> dict:
        config = super().get_config()
        config["second_moment"] = self.second_moment
        return config

    def _row_slots(self, variable) -> list:
        return [self._accumulators[self._get_variable_index(variable)]]

    def _update_rows(self, gradient, squared, slot_rows, learning_rate):
        accumulator = slot_rows[0] + squared
        return (learning_rate * gradient) / tf.sqrt(accumulator + self.epsilon), [accumulator]
