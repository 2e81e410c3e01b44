"""Keras 3 optimizers whose step costs O(touched rows) on sparse gradients.

* ``LazyAdam``, ``LazyAdamW``, ``LazySGD`` (momentum), ``LazyAdagrad``: the
  Keras optimizers of the same names on dense gradients (bit for bit); on a
  ``tf.IndexedSlices`` gradient (embedding tables, the class weights of
  ``tf_sampling.layers``) they read and write only the touched rows.
* ``SparseLossScaleOptimizer``: Keras' ``LossScaleOptimizer`` without its
  dense finiteness check of sparse gradients (mixed float16).
* ``CatchUp``: a callback that calls ``flush()`` of a ``LazyAdam(catch_up=True)``
  before evaluation and at epoch ends, so all weights are Adam's.
* ``LazyOptimizer``: the shared base, to make another Keras optimizer lazy.
* ``sum_duplicates``, ``touched_rows_penalty``: helpers.
* ``adam_rows``: lazy Adam's row arithmetic as pure functions (one row per
  index and its squared term, weight decay, step size, moments, update and
  the catch-up of skipped steps), to write the same update on other state.

Importing registers the classes with ``keras.saving`` (package
``"tf_sampling"``), so ``keras.models.load_model`` needs no ``custom_objects``.
"""

from tf_sampling.optimizers import adam_rows
from tf_sampling.optimizers.adam import LazyAdam, LazyAdamW
from tf_sampling.optimizers.base import LazyOptimizer, sum_duplicates
from tf_sampling.optimizers.callbacks import CatchUp
from tf_sampling.optimizers.loss_scale import SparseLossScaleOptimizer
from tf_sampling.optimizers.regularization import touched_rows_penalty
from tf_sampling.optimizers.sgd import LazyAdagrad, LazySGD

__all__ = [
    "CatchUp",
    "LazyAdagrad",
    "LazyAdam",
    "LazyAdamW",
    "LazyOptimizer",
    "LazySGD",
    "SparseLossScaleOptimizer",
    "adam_rows",
    "sum_duplicates",
    "touched_rows_penalty",
]
