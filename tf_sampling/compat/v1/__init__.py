"""TF 1.x names of the candidate-sampling losses.

* ``tf.nn.sampled_softmax_loss`` -> ``tf_sampling.compat.v1.nn.sampled_softmax_loss``
* ``tf.nn.nce_loss`` -> ``tf_sampling.compat.v1.nn.nce_loss``
* ``tf.contrib.nn.rank_sampled_softmax_loss`` ->
  ``tf_sampling.compat.v1.contrib.nn.rank_sampled_softmax_loss``

These are the very function objects of ``tf_sampling.nn``: they accept what
the TF 1.x functions accepted (``PartitionedVariable`` weights and
``tf.compat.v1.Session`` graphs included) and compute the same numbers. There
is no code of their own here. See ``docs/migration.md``.
"""

from tf_sampling.compat.v1 import contrib, nn

__all__ = ["contrib", "nn"]
