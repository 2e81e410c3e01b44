"""``tf.nn`` (TF 1.x) sampled losses: aliases of ``tf_sampling.nn``'s functions."""

from tf_sampling.nn import nce_loss, sampled_softmax_loss

__all__ = ["nce_loss", "sampled_softmax_loss"]
