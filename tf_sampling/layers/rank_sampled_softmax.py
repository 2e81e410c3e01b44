"""``RankSampledSoftmax``: TAPAS rank-based resampling while training, exact softmax otherwise."""

from __future__ import annotations

import keras

from tf_sampling._keras.options import check_resampling
from tf_sampling.layers.base import SampledOutputLayer


@keras.saving.register_keras_serializable(package="tf_sampling")
class RankSampledSoftmax(SampledOutputLayer):
    """Output layer trained with TAPAS (``tf_sampling.nn.rank_sampled_softmax_loss``).

    Each step samples ``num_sampled`` classes, keeps the ``num_resampled`` ones
    the model currently ranks highest (``resampling_temperature`` sets how
    greedily) and trains a sampled softmax over them. Same mechanism as
    ``SampledSoftmax``; compile with ``ts.losses.RankSampledSoftmaxLoss()``.

    The temperature lives in a non-trainable variable, so it can be lowered
    during training, e.g. from a callback::

        layer.resampling_temperature.assign(0.5)

    (see ``tf_sampling.layers.ResamplingTemperatureScheduler``). Its current
    value is saved with the model's weights; ``get_config`` holds the initial
    one, as it holds every other constructor argument.

    Args:
      num_classes: int >= 2.
      num_sampled: int, first-pass sample size.
      num_resampled: int, ``1 <= num_resampled < num_sampled``.
      resampling_temperature: float > 0, initial temperature.
      sampler: default ``"learned_unigram"`` as in TensorFlow (needs this
        package's compiled op); any ``SampledSoftmax`` sampler works.
      **kwargs: every other ``SampledSoftmax`` argument.
    """

    def __init__(
        self,
        num_classes: int,
        num_sampled: int,
        num_resampled: int,
        resampling_temperature: float = 1.0,
        sampler="learned_unigram",
        remove_accidental_hits: bool | None = None,
        **kwargs,
    ):
        super().__init__(
            num_classes,
            num_sampled,
            sampler=sampler,
            remove_accidental_hits=remove_accidental_hits,
            **kwargs,
        )
        self.num_resampled, initial = check_resampling(
            num_resampled, self.num_sampled, resampling_temperature
        )
        self._initial_temperature = initial
        self.resampling_temperature = self.add_weight(
            name="resampling_temperature",
            shape=(),
            initializer=keras.initializers.Constant(initial),
            trainable=False,
            autocast=False,
            dtype="float32",
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_resampled=self.num_resampled, resampling_temperature=self._initial_temperature
        )
        return config
