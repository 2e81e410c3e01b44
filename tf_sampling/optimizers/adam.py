"""Lazy Adam and AdamW: Keras' Adam on dense gradients, row-sparse on ``IndexedSlices``.

:class:`LazyAdam` chooses a path per gradient; the arithmetic of every path is
in :mod:`tf_sampling.optimizers.adam_rows` (or, for the fused kernel, the same
operations in C++):

* sparse, on a CPU, without ``amsgrad`` and ``catch_up``, kernels on: one call
  of the fused kernel (:meth:`LazyAdam._fused_update`);
* sparse otherwise: :class:`LazyOptimizer`'s row path, the rows' skipped steps
  applied first with ``catch_up`` (:meth:`LazyAdam._catch_up_rows`);
* dense: Keras' Adam, the variable's skipped steps applied first with
  ``catch_up`` (:meth:`LazyAdam._dense_step`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling import ops
from tf_sampling._core import checks
from tf_sampling._core.xla import in_xla_context
from tf_sampling.optimizers import _checks, adam_rows
from tf_sampling.optimizers.base import LazyOptimizer, _tf_variable

#: The last-step slots' value until their variable's first step (or after
#: restoring a checkpoint that did not have them): every row is current then.
_NOT_STARTED = -1


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
    step (``iterations + 1``), not a per-row count, as TF-Addons' ``LazyAdam``
    did. A step costs O(touched rows), not O(rows).

    This is what TF-Addons' ``LazyAdam`` computed: on a row touched every step it
    equals Adam. A row touched rarely trains differently: Keras' Adam keeps
    moving it on the steps after its gradient (its momentum decays over about
    ``1 / (1 - beta_1)`` steps) and decays its ``v``, while here a gradient
    moves its row once, by about ``1 - beta_1`` of what Adam's steps add up
    to, the rest waiting in ``m`` for the row's next touch.

    **Repeated rows** (``second_moment``). A batch that looks a row up ``n``
    times (a frequent word in an embedding or as a target) gives ``n`` slices
    ``g_i`` for it. The default, ``"per_lookup"``, is Keras 3's own ``Adam``:
    ``m`` gets the summed gradient ``g = sum_i g_i`` and ``v`` the sum of the
    squared lookups ``sum_i g_i**2`` (Keras' ``square`` acts on the slices
    before they are summed). ``"summed"`` is Adam of the summed gradient, as
    TF1's and TF-Addons' ``LazyAdam``: ``m`` and ``v`` get ``g`` and ``g**2``.
    Where the lookups' gradients agree, ``g**2`` is up to ``n`` times
    ``sum_i g_i**2``, so ``"summed"`` takes steps up to ``sqrt(n)`` times
    smaller on frequent rows (in training that, not the laziness, is what
    keeps ``"summed"`` behind Keras' ``Adam``: ``docs/optimizers.md``). Rows
    looked up once are the same under both. With ``"per_lookup"``,
    ``clipvalue`` clips each lookup's row (as Keras does to an
    ``IndexedSlices``), and ``clipnorm``/``global_clipnorm`` scale every
    lookup's row by the factor of the summed gradient's norm.

    **Skipped steps** (``catch_up``). ``catch_up=True`` applies the steps a
    row skipped, at the same O(touched rows) cost:
    each row remembers the step it was last updated at (an int64 slot per
    row), and when it is touched again after ``k`` steps without a gradient,
    the ``k`` updates Keras' Adam would have made meanwhile are applied first,
    in closed form: ``m *= beta_1**k``, ``v *= beta_2**k`` and the weights move
    by ``lr * m / (sqrt(v) + epsilon) * S``, where ``S`` sums the skipped
    steps' factors ``(beta_1 / sqrt(beta_2))**j * sqrt(1 - beta_2**n) / (1 -
    beta_1**n)`` (step ``n``'s bias correction, exact) over ``j = 1..k``
    (decoupled weight decay is included: the row is decayed ``k`` times and
    each skipped step's update is decayed by the later ones; with ``beta_2 =
    0`` a skipped step's ``v`` is 0, so the series is of ``beta_1**j`` over a
    denominator ``epsilon``, exactly). Call
    :meth:`flush` (or use :class:`CatchUp` in ``fit``) before evaluating or
    saving, so that every row, touched or not, holds Adam's weights of the
    current step. Two things are approximated, both only on rows that skipped
    steps:

    * the learning rate of each skipped step is the current step's (exact
      for a constant learning rate; a schedule is read at the catch-up step);
    * a skipped step's denominator ``sqrt(v_n) + epsilon`` is taken as
      ``beta_2**(j/2) * (sqrt(v) + epsilon)``, i.e. ``epsilon`` decays with
      ``sqrt(v)``: exact for ``epsilon = 0``, and the relative error of skipped
      step ``j`` is below ``1 - beta_2**(j/2)`` times ``epsilon / (sqrt(v_n) +
      epsilon)``. With ``amsgrad`` the denominator is ``sqrt(v_hat)`` throughout
      (``v_hat`` cannot grow without a gradient) and this is exact.

    For a given sequence of gradients this reproduces Keras' Adam (tested).
    In training it cannot quite: a step's forward pass reads a row before the
    optimizer catches it up, so its gradient is taken at the lagging weights
    (how close it came on the PTB demo: ``docs/optimizers.md``). It is there
    for models where the skipped momentum matters, and for evaluating
    Adam-equivalent weights.

    A variable's rows count as current when its first gradient arrives (and
    after restoring a checkpoint that has no last-step slots, e.g. one written
    without ``catch_up``), so no steps from before that are applied.

    **One kernel on CPU.** Without ``amsgrad`` and ``catch_up``, the sparse
    step of a float32/float64 variable on a CPU is one call of this
    package's C++ op (``tf_sampling.ops.resource_sparse_apply_lazy_adam``,
    loaded lazily): deduplication, weight decay, both moments and the update
    in one pass over the touched rows, the same bits as the TensorFlow ops
    that run everywhere else (under XLA, on GPUs, without the built library,
    and with the kernels switched off: ``tf_sampling.ops.custom_kernels``).

    The series is summed until its terms fall below 1e-9 of the first (about
    200 terms for the default betas), so a catch-up costs O(touched rows x
    (row size + 200)) per step. Rows get catch-up only from gradients, so a
    variable that gets ``None`` gradients on some steps after its first
    gradient catches those up too, where Keras' Adam skips the variable.

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
      second_moment: ``"per_lookup"`` (default; Keras' ``Adam``) or
        ``"summed"`` (TF-Addons' ``LazyAdam``): what ``v`` gets for a row
        looked up several times in a batch (see above).
      catch_up: bool. Apply the steps a row skipped when it is touched again
        (see above), so that training follows Keras' Adam. Default False
        (TF-Addons' lazy updates).
      name: Optimizer name (prefix of its variables).

    Raises:
      ValueError: With ``catch_up``, ``beta_1 >= sqrt(beta_2)`` (without
        ``amsgrad``, for ``beta_2 > 0``); ``second_moment`` not one of the
        two; a gradient whose rows are not the variable's (also
        ``tf.errors.InvalidArgumentError``, for shapes known at run time
        only); see also :class:`LazyOptimizer`.

    Example:
      ```python
      opt = tf_sampling.optimizers.LazyAdam(1e-3)
      model.compile(optimizer=opt, loss=tf_sampling.losses.SampledSoftmaxLoss())
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
        catch_up: bool = False,
        second_moment: str = "per_lookup",
        name: str = "lazy_adam",
        **kwargs,
    ):
        catch_up = checks.check_bool(catch_up, "catch_up")
        second_moment = _checks.check_second_moment(second_moment)
        if catch_up:
            _checks.check_catch_up_betas(beta_1, beta_2, amsgrad)
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
        self.catch_up = catch_up
        self.second_moment = second_moment
        # The length of the skipped steps' series (catch_up only).
        self._series_terms = adam_rows.series_length(beta_1, beta_2, amsgrad) if catch_up else 1

    def build(self, var_list):
        """Creates Adam's slots and, with ``catch_up``, each row's last updated step."""
        if self.built:
            return
        super().build(var_list)
        self._last_steps = []
        if self.catch_up:
            for variable in var_list:
                # One int64 per row: the step number the row's state is current
                # at; _NOT_STARTED until the variable's first step (a checkpoint
                # without these slots leaves them so: restored rows are current).
                self._last_steps.append(
                    self.add_variable(
                        shape=tuple(variable.shape[:1]),
                        initializer=keras.initializers.Constant(_NOT_STARTED),
                        dtype="int64",
                        name=f"{variable.path.replace('/', '_')}_last_step",
                    )
                )

    def load_own_variables(self, store) -> None:
        """As Keras; with ``catch_up``, also loads the state of a ``LazyAdam`` without it.

        Such a state lacks the last-step slots: the restored rows count as
        current from the next step (no phantom skipped steps).
        """
        others = [v for v in self.variables if all(v is not last for last in self._last_steps)]
        if not self.catch_up or not self.built or len(store.keys()) != len(others):
            super().load_own_variables(store)
            return
        for i, variable in enumerate(others):
            variable.assign(store[str(i)])
        for last in self._last_steps:
            last.assign(tf.fill(last.shape, tf.constant(_NOT_STARTED, tf.int64)))

    def get_config(self) -> dict:
        config = super().get_config()
        config["catch_up"] = self.catch_up
        config["second_moment"] = self.second_moment
        return config

    def flush(self) -> None:
        """Applies every row's skipped steps, so that all weights are Adam's of this step.

        With ``catch_up=True``, a row not touched for ``k`` steps holds its
        weights and moments of ``k`` steps ago until it is touched again; this
        brings every row of every trained variable to the last finished step
        (O(all rows) once). For given gradients the updates that follow are
        the same as without the call (up to rounding); in training, the next
        forward passes read the caught-up rows. Call it before ``evaluate``,
        ``predict`` or saving (:class:`CatchUp` does it in ``fit``). A no-op
        without ``catch_up`` or before the first step.
        """
        if not self.catch_up or not self.built:
            return
        for variable in self._trainable_variables:
            if not len(variable.shape):
                continue
            last = self._last_steps[self._get_variable_index(variable)]
            if tf.executing_eagerly() and not bool(tf.reduce_any(_read(last) < self.iterations)):
                continue  # nothing behind: skip the O(rows) work
            self._flush_variable(variable, tf.cast(self.learning_rate, variable.dtype))

    # ---------------------------------------------------------------- the three paths
    def _sparse_step(self, gradient: tf.IndexedSlices, variable, learning_rate) -> None:
        """The fused kernel where it applies, else the row path (catch-up included)."""
        if self._fuses(variable):
            self._fused_update(gradient, variable, learning_rate)
        else:
            super()._sparse_step(gradient, variable, learning_rate)

    def _dense_step(self, gradient, variable, learning_rate):
        """Keras' Adam; with ``catch_up``, the variable's skipped rows are flushed first."""
        if not self.catch_up or not len(variable.shape):
            return super()._dense_step(gradient, variable, learning_rate)
        last = self._last_steps[self._get_variable_index(variable)]
        lr = tf.cast(learning_rate, variable.dtype)

        def flush():
            self._flush_variable(variable, lr)
            return tf.constant(True)

        # Rows of a variable that had sparse gradients before may be behind;
        # a variable that only ever gets dense ones never is (no dense work then).
        tf.cond(tf.reduce_any(_read(last) < self.iterations), flush, lambda: tf.constant(False))
        super()._dense_step(gradient, variable, learning_rate)
        self.assign(last, tf.fill(tf.shape(last), tf.cast(self.iterations + 1, tf.int64)))
        return None

    def _fuses(self, variable) -> bool:
        """Whether ``variable``'s sparse step can run as the C++ kernel."""
        return (
            not self.amsgrad
            and not self.catch_up
            and variable.dtype in ("float32", "float64")
            and not in_xla_context()
            and _on_cpu(_tf_variable(variable))
            and ops.custom_kernels_enabled()
            and ops.lazy_adam_kernel_available()
        )

    def _fused_update(self, gradient: tf.IndexedSlices, variable, learning_rate) -> None:
        # The scalars as the row path makes them (Python floats converted to
        # the dtype), so the kernel's arithmetic is adam_rows'.
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        momentum, velocity = self._row_slots(variable)  # no AMSGrad here: just m and v
        weight_decay = None
        if self._decays(variable):
            weight_decay = tf.cast(self.weight_decay, dtype)
        ops.resource_sparse_apply_lazy_adam(
            _tf_variable(variable),
            _tf_variable(momentum),
            _tf_variable(velocity),
            tf.cast(gradient.values, dtype),
            gradient.indices,
            alpha=adam_rows.step_size(lr, self.beta_1, self.beta_2, self.iterations + 1),
            one_minus_beta_1=tf.constant(1 - self.beta_1, dtype),
            one_minus_beta_2=tf.constant(1 - self.beta_2, dtype),
            epsilon=tf.constant(self.epsilon, dtype),
            learning_rate=lr,
            weight_decay=weight_decay,
            per_lookup_second_moment=self._keeps_lookups,
        )

    def _row_slots(self, variable) -> list:
        index = self._get_variable_index(variable)
        slots = [self._momentums[index], self._velocities[index]]
        if self.amsgrad:
            slots.append(self._velocity_hats[index])
        return slots

    def _update_rows(self, gradient, squared, slot_rows, learning_rate):
        alpha = adam_rows.step_size(learning_rate, self.beta_1, self.beta_2, self.iterations + 1)
        m, v = adam_rows.moments(
            slot_rows[0], slot_rows[1], gradient, squared, self.beta_1, self.beta_2
        )
        new_rows = [m, v]
        if self.amsgrad:
            v = tf.maximum(slot_rows[2], v)
            new_rows.append(v)
        return adam_rows.decrement(m, v, alpha, self.epsilon), new_rows

    # ---------------------------------------------------------------- catch-up
    def _catch_up_rows(self, variable, indices, shape, slot_rows, learning_rate):
        if not self.catch_up:
            return slot_rows
        last = self._last_steps[self._get_variable_index(variable)]
        self._start(last)
        weights = None
        if self._decays(variable):
            weights = tf.gather(_tf_variable(variable), indices)
        decrement, slot_rows = self._skipped_steps(
            tf.gather(_tf_variable(last), indices), weights, slot_rows, learning_rate
        )
        self.assign_sub(variable, tf.IndexedSlices(decrement, indices, shape))
        step = tf.cast(self.iterations + 1, tf.int64)
        self.assign(
            last,
            tf.IndexedSlices(
                tf.fill(tf.shape(indices), step), indices, tf.constant(list(last.shape), tf.int64)
            ),
        )
        return slot_rows

    def _flush_variable(self, variable, lr) -> None:
        """Brings all rows of ``variable`` to the last finished step."""
        last = self._last_steps[self._get_variable_index(variable)]
        slots = self._row_slots(variable)
        weights = _read(variable) if self._decays(variable) else None
        steps = _read(last)
        # A variable not started yet is current: nothing to apply.
        steps = tf.where(steps < 0, tf.cast(self.iterations, tf.int64), steps)
        decrement, new_slots = self._skipped_steps(
            steps, weights, [_read(slot) for slot in slots], lr
        )
        self.assign_sub(variable, decrement)
        for slot, value in zip(slots, new_slots, strict=True):
            self.assign(slot, value)
        self.assign(last, tf.fill(tf.shape(last), tf.cast(self.iterations, tf.int64)))

    def _start(self, last) -> None:
        """Marks every row current at this step if ``last``'s variable has not started."""
        if not last.shape[0]:
            return
        # Rows are written all at once before any alone, so row 0 tells (one row read).
        first = tf.gather(_tf_variable(last), tf.zeros([1], tf.int32))[0]

        def start():
            self.assign(last, tf.fill(last.shape, tf.cast(self.iterations, tf.int64)))
            return tf.constant(True)

        tf.cond(first < 0, start, lambda: tf.constant(False))

    def _skipped_steps(self, last, weights, slot_rows, lr) -> tuple:
        """:func:`adam_rows.catch_up` with this optimizer's settings, up to ``iterations``.

        Args:
          last: int64 ``[u]``, the step each row is current at.
          weights: The rows' weights ``[u, *row]`` when weight decay applies, else None.
          slot_rows: ``[m, v(, v_hat)]`` rows ``[u, *row]``.
          lr: Scalar learning rate in the rows' dtype.

        Returns:
          ``(decrement, new_slot_rows)``.
        """
        decrement, m, v = adam_rows.catch_up(
            slot_rows[0],
            slot_rows[1],
            last,
            self.iterations,
            lr,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            amsgrad=self.amsgrad,
            v_hat=slot_rows[2] if self.amsgrad else None,
            weight_decay=None if weights is None else self.weight_decay,
            weights=weights,
            terms=self._series_terms,
        )
        return decrement, [m, v, *slot_rows[2:]]


def _on_cpu(variable) -> bool:
    """Whether a TF variable lives on a CPU (the fused kernel's only device)."""
    device_type = tf.DeviceSpec.from_string(variable.device or "").device_type
    if device_type is None:  # not placed: a CPU only where no GPU is visible
        return not tf.config.list_logical_devices("GPU")
    return device_type == "CPU"


def _read(variable) -> tf.Tensor:
    """The whole value of a Keras or TF variable."""
    return tf.convert_to_tensor(_tf_variable(variable))


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
      ValueError: ``weight_decay`` is None (Keras' ``AdamW`` raises the same).
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
        catch_up: bool = False,
        second_moment: str = "per_lookup",
        name: str = "lazy_adamw",
        **kwargs,
    ):
        if weight_decay is None:
            # Keras' AdamW message, word for word, then what to use instead.
            raise ValueError(
                "Argument `weight_decay` must be a float. Received: weight_decay=None "
                "(LazyAdamW is AdamW; use LazyAdam for no weight decay)."
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
            catch_up=catch_up,
            second_moment=second_moment,
            name=name,
            **kwargs,
        )
