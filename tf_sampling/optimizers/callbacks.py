"""A Keras callback that flushes a catch-up ``LazyAdam`` before evaluation and at epoch ends."""

from __future__ import annotations

import keras


def _flushable(optimizer):
    """The optimizer with a ``flush`` method: ``optimizer`` or the one a loss-scale wrapper holds."""
    while optimizer is not None and not hasattr(optimizer, "flush"):
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return optimizer


class CatchUp(keras.callbacks.Callback):
    """Calls the model optimizer's ``flush()`` whenever the weights are read.

    With ``LazyAdam(catch_up=True)`` (or ``LazyAdamW``), rows that were not
    touched recently hold their weights of their last update until their next
    one; ``flush()`` applies their skipped steps so that every row holds Adam's
    weights of the current step. This callback does it when ``fit`` evaluates
    (``on_test_begin``, i.e. validation), at the end of each epoch (before the
    callbacks listed after it, e.g. ``ModelCheckpoint``: list this one first)
    and at the end of training, and before ``evaluate``/``predict`` when passed
    to them. Each flush costs O(all rows) once. A no-op for other optimizers.

    Example:
      ```python
      model.compile(optimizer=tf_sampling.optimizers.LazyAdam(catch_up=True), loss=...)
      model.fit(x, y, validation_data=(xv, yv),
                callbacks=[tf_sampling.optimizers.CatchUp()])
      ```
    """

    def _flush(self) -> None:
        optimizer = _flushable(getattr(self.model, "optimizer", None))
        if optimizer is not None:
            optimizer.flush()

    def on_test_begin(self, logs=None) -> None:
        self._flush()

    def on_predict_begin(self, logs=None) -> None:
        self._flush()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._flush()

    def on_train_end(self, logs=None) -> None:
        self._flush()
