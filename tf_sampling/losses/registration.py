"""Lets ``model.compile(loss="tf_sampling>SampledSoftmaxLoss")`` resolve by name.

``keras.saving.register_keras_serializable`` makes the losses loadable from
saved configs, but Keras 3's ``compile`` looks a *string* loss up only in
Keras' own table of built-in losses (``keras.losses.get``), which has no public
way to add entries. This module adds our registered names
(``"tf_sampling>SampledSoftmaxLoss"`` etc., which cannot clash with Keras'
names) to that table when it exists, and does nothing otherwise; without it
use ``loss=tf_sampling.losses.SampledSoftmaxLoss()``.
"""

from __future__ import annotations

import importlib


def register_with_keras_get(*classes) -> bool:
    """Makes ``keras.losses.get(registered_name)`` return the class.

    Args:
      *classes: Loss classes already decorated with
        ``keras.saving.register_keras_serializable``.

    Returns:
      bool: whether Keras' lookup table was found and extended.
    """
    import keras

    try:
        table = importlib.import_module("keras.src.losses").ALL_OBJECTS_DICT
    except (ImportError, AttributeError):
        return False
    if not isinstance(table, dict):
        return False
    for cls in classes:
        table.setdefault(keras.saving.get_registered_name(cls), cls)
    return True
