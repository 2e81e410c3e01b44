"""The options a Keras output layer and its loss hold, checked once for both.

``SampledSoftmax``/``NCE``/``RankSampledSoftmax`` and ``SampledSoftmaxLoss``/
``NCELoss``/``RankSampledSoftmaxLoss`` take the same sampling options; the
rules they share live here, beside the contract of ``output_tags``. Messages
in Keras' words ("Argument `name` must be ... Received: name=value").
"""

from __future__ import annotations

import numbers

from tf_sampling._core.checks import check_int
from tf_sampling._core.loss_args import check_resampling_temperature

__all__ = ["check_resampling", "check_sampling_options"]


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
            "Argument `num_sampled` must be smaller than `num_classes` when sampling unique "
            f"classes. Received: num_sampled={num_sampled}, num_classes={num_classes}. Sampling "
            "every class is the full softmax: use keras.layers.Dense instead."
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
            "Argument `num_resampled` must be smaller than `num_sampled`. Received: "
            f"num_resampled={num_resampled}, num_sampled={num_sampled}"
        )
    if not isinstance(resampling_temperature, numbers.Real) or isinstance(
        resampling_temperature, bool
    ):
        raise TypeError(
            "Argument `resampling_temperature` must be a positive float. Received: "
            f"resampling_temperature={resampling_temperature!r}"
        )
    return num_resampled, check_resampling_temperature(resampling_temperature)
