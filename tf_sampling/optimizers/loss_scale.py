"""A ``LossScaleOptimizer`` whose finiteness check reads only the values of sparse gradients."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_sampling")
class SparseLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """``keras.optimizers.LossScaleOptimizer`` that keeps ``IndexedSlices`` sparse.

    Keras' version checks ``isfinite`` on each gradient, which turns an
    ``IndexedSlices`` into a dense ``[num_classes, dim]`` tensor every step;
    this one checks the slices' values (the rows a dense tensor would hold
    besides zeros), so the result is the same. Everything else, including
    its arguments and config, is Keras'. Pass it to ``compile`` under the
    ``"mixed_float16"`` policy (Keras then does not wrap the optimizer again):

    ```python
    opt = tf_sampling.optimizers.SparseLossScaleOptimizer(tf_sampling.optimizers.LazyAdam())
    model.compile(optimizer=opt, loss=...)
    ```
    """

    def check_finite(self, grads):
        """Whether every gradient (for slices: every value) is finite; a scalar bool."""
        values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
        return super().check_finite(values)
