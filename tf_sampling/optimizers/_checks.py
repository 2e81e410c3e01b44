"""The lazy optimizers' own argument checks, in Keras' words ("Received: name=value")."""

from __future__ import annotations

import numpy as np

from tf_sampling.optimizers import adam_rows

SECOND_MOMENTS = ("per_lookup", "summed")


def check_lazy_optimizer_options(optimizer: str, use_ema, gradient_accumulation_steps) -> None:
    """Rejects the Keras optimizer options that would update every row each step.

    ``use_ema`` averages every weight every step and ``gradient_accumulation_steps``
    keeps and resets dense accumulators, so neither can stay sparse.

    Args:
      optimizer: Class name of the lazy optimizer, quoted in the error.
      use_ema: The ``use_ema`` argument it received.
      gradient_accumulation_steps: The ``gradient_accumulation_steps`` argument.

    Raises:
      ValueError: ``use_ema`` is true or ``gradient_accumulation_steps`` is set.
    """
    if use_ema:
        raise ValueError(
            f"Argument `use_ema` must be False for {optimizer} (a moving average of the "
            f"weights updates every row each step). Received: use_ema={use_ema!r}"
        )
    if gradient_accumulation_steps is not None:
        raise ValueError(
            f"Argument `gradient_accumulation_steps` must be None for {optimizer} (its "
            "accumulators are dense and reset every row). Received: "
            f"gradient_accumulation_steps={gradient_accumulation_steps!r}"
        )


def check_catch_up_betas(beta_1, beta_2, amsgrad: bool) -> float:
    """Checks that Adam's skipped steps form a converging series; returns its ratio.

    A row that gets no gradient for ``j`` steps moves by ``ratio**j`` times its
    last step (:func:`~tf_sampling.optimizers.adam_rows.series_ratio`), so
    catching up in closed form needs that ratio below 1.

    Args:
      beta_1, beta_2: Adam's decay rates.
      amsgrad: Whether AMSGrad's running maximum of ``v`` is used.

    Returns:
      The ratio, in ``[0, 1)``.

    Raises:
      ValueError: A beta outside ``[0, 1)``, or a ratio of at least 1.
    """
    for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not isinstance(value, int | float | np.floating) or not 0 <= value < 1:
            raise ValueError(
                f"Argument `{name}` must be a float in [0, 1) with catch_up=True. "
                f"Received: {name}={value!r}"
            )
    ratio = adam_rows.series_ratio(beta_1, beta_2, amsgrad)
    if ratio >= 1:
        raise ValueError(
            "Argument `beta_1` must be below sqrt(beta_2) with catch_up=True (a row's "
            "skipped steps would grow instead of decaying). "
            f"Received: beta_1={beta_1!r}, beta_2={beta_2!r}"
        )
    return ratio


def check_second_moment(second_moment) -> str:
    """Checks a lazy optimizer's ``second_moment`` (``LazyAdam``, ``LazyAdagrad``).

    Args:
      second_moment: ``"per_lookup"`` or ``"summed"``.

    Returns:
      ``second_moment``.

    Raises:
      ValueError: Another value.
    """
    if isinstance(second_moment, str) and second_moment in SECOND_MOMENTS:
        return second_moment
    raise ValueError(
        f"Argument `second_moment` must be one of {SECOND_MOMENTS}. "
        f"Received: second_moment={second_moment!r}"
    )
