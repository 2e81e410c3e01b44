"""TF 1.x names of the candidate-sampling losses.

* ``tf.nn.sampled_softmax_loss`` -> ``tf_sampling.compat.v1.nn.sampled_softmax_loss``
* ``tf.nn.nce_loss`` -> ``tf_sampling.compat.v1.nn.nce_loss``
* ``tf.contrib.nn.rank_sampled_softmax_loss`` ->
  ``tf_sampling.compat.v1.contrib.nn.rank_sampled_softmax_loss``
* ``tf.contrib.nn.sampled_sparse_softmax_loss`` (TF 1.15) ->
  ``tf_sampling.compat.v1.contrib.nn.sampled_sparse_softmax_loss``

The first three are the very function objects of ``tf_sampling.nn``; the
fourth, which has no ``tf_sampling.nn`` name (it is ``sampled_softmax_loss``
with one true class), comes from the same core. They accept what the TF 1.x
functions accepted (``PartitionedVariable`` weights and
``tf.compat.v1.Session`` graphs included) and compute the same numbers. There
is no code of their own here. See ``docs/migration.md``.
"""

from tf_sampling.compat.v1 import contrib, nn

__all__ = ["contrib", "nn"]
