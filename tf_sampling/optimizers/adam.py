"""Lazy Adam and AdamW: Keras' Adam on dense gradients, row-sparse on ``IndexedSlices``."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling.optimizers.base import LazyOptimizer


@keras.saving.register_keras_serializable(package="tf_sampling")
class LazyAdam(LazyOptimizer, keras.optimizers.Adam):
    """Adam that updates only the rows a sparse gradient touches.

    On a dense gradient this is ``keras.optimizers.Adam`` (its own
    ``update_step`` runs), so one ``LazyAdam`` can train a whole model. On a
    ``tf.IndexedSlices`` gradient (an embedding table, the class weights of a
    ``tf_sampling.layers`` output layer), duplicate indices are summed and, for
    the touched rows only, the first and second moments and the variable are
    updated with Adam's formulas; untouched rows keep their weights *and* their
    moments (their moments do not decay). The bias correction uses the global
    step (``iterations + 1``), not a per-row count, exactly as TF-Addons'
    ``LazyAdam`` did. A step costs O(touched rows), not O(rows).

    This is what TF-Addons' ``LazyAdam`` computed: on a row touched every step it
    equals Adam; a row touched rarely gets the update Adam would give a row whose
    moments had not decayed meanwhile (so typically a larger step than Adam's).

    Args:
      learning_rate: float, ``LearningRateSchedule`` or callable. Defaults to 0.001.
      beta_1, beta_2: Decay rates of the first and second moments.
      epsilon: Added to ``sqrt(v)``.
      amsgrad: Use AMSGrad's running maximum of ``v`` (kept lazily too).
      weight_decay: Decoupled weight decay ``w -= lr * weight_decay * w``,
        applied to the touched rows of sparse gradients (all rows of dense ones).
      clipnorm, clipvalue, global_clipnorm: As Keras; applied to the summed
        rows of a sparse gradient, so the update stays sparse.
      use_ema, gradient_accumulation_steps: Not supported (``ValueError``):
        both update every row every step.
      loss_scale_factor: As Keras (which fails on sparse gradients here).
      name: Optimizer name (prefix of its variables).

    Example:
      ```python
      model.compile(optimizer=tf_sampling.optimizers.LazyAdam(1e-3),
                    loss=tf_sampling.losses.SampledSoftmaxLoss())
      ```
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str = "lazy_adam",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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
        index = self._get_variable_index(variable)
        slots = [self._momentums[index], self._velocities[index]]
        if self.amsgrad:
            slots.append(self._velocity_hats[index])
        return slots

    def _update_rows(self, gradient, slot_rows, learning_rate):
        # Keras Adam's operations in Keras Adam's order, on the gathered rows.
        dtype = gradient.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), step)
        alpha = learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v = slot_rows[0], slot_rows[1]
        m = m + (gradient - m) * (1 - self.beta_1)
        v = v + (tf.square(gradient) - v) * (1 - self.beta_2)
        new_rows = [m, v]
        if self.amsgrad:
            v = tf.maximum(slot_rows[2], v)
            new_rows.append(v)
        return (m * alpha) / (tf.sqrt(v) + self.epsilon), new_rows


@keras.saving.register_keras_serializable(package="tf_sampling")
class LazyAdamW(LazyAdam):
    """AdamW that updates only the rows a sparse gradient touches.

    :class:`LazyAdam` with a required decoupled ``weight_decay`` (default
    0.004, as ``keras.optimizers.AdamW``): on a dense gradient it is Keras'
    AdamW step for step; on an ``IndexedSlices`` gradient the decay
    ``w -= lr * weight_decay * w`` and the Adam update apply to the touched
    rows only (an untouched row is not decayed that step). Exclude variables
    with ``exclude_from_weight_decay`` as in Keras. Other arguments: see
    :class:`LazyAdam`.

    Raises:
      ValueError: ``weight_decay`` is None.
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str = "lazy_adamw",
        **kwargs,
    ):
        if weight_decay is None:
            raise ValueError(
                "`weight_decay` must be a float for LazyAdamW (use LazyAdam for none), "
                "got weight_decay=None."
            )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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
