"""``ResamplingTemperatureScheduler``: change TAPAS' temperature during ``fit``."""

from __future__ import annotations

from collections.abc import Callable

import keras


class ResamplingTemperatureScheduler(keras.callbacks.Callback):
    """Sets a ``RankSampledSoftmax`` layer's temperature at the start of every epoch.

    Args:
      schedule: ``schedule(epoch: int, temperature: float) -> float``, given
        the epoch index and the current temperature.
      layer: The ``RankSampledSoftmax`` layer, or None to use every
        ``RankSampledSoftmax`` layer of the model being trained.
    """

    def __init__(self, schedule: Callable[[int, float], float], layer=None):
        super().__init__()
        self.schedule = schedule
        self.layer = layer

    def _layers(self) -> list:
        if self.layer is not None:
            return [self.layer]
        from tf_sampling.layers.rank_sampled_softmax import RankSampledSoftmax

        found, stack = [], list(self.model.layers)
        while stack:
            layer = stack.pop()
            if isinstance(layer, RankSampledSoftmax):
                found.append(layer)
            stack.extend(getattr(layer, "layers", []))
        if not found:
            raise ValueError("ResamplingTemperatureScheduler: the model has no RankSampledSoftmax.")
        return found

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self._layers():
            current = float(keras.ops.convert_to_numpy(layer.resampling_temperature))
            new = float(self.schedule(epoch, current))
            if not new > 0:
                raise ValueError(f"The temperature schedule returned {new}; it must be > 0.")
            layer.resampling_temperature.assign(new)
