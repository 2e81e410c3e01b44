"""``TaggedInputsLoss``: a Keras loss whose ``call`` sees ``y_true`` and ``y_pred`` as given.

``keras.losses.Loss.__call__`` casts ``y_true`` and ``y_pred`` to the loss
dtype before ``call``: class ids would turn into floats and the output
layer's tag (``tf_sampling._keras.output_tags``) would be lost. The losses of
the output heads derive from this class and read :meth:`inputs` in ``call``;
reduction, masks and sample weights stay Keras' own.
"""

from __future__ import annotations

import keras


class TaggedInputsLoss(keras.losses.Loss):
    """Base of the heads' losses: keeps the uncast inputs of the current call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._originals = None

    def __call__(self, y_true, y_pred, sample_weight=None):
        self._originals = (y_true, y_pred)
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._originals = None

    def inputs(self, y_true, y_pred) -> tuple:
        """``(y_true, y_pred)`` as passed to ``__call__`` (``call``'s own when called directly)."""
        return (y_true, y_pred) if self._originals is None else self._originals
