"""``tf.contrib.nn.rank_sampled_softmax_loss``: alias of ``tf_sampling.nn``'s function."""

from tf_sampling.nn import rank_sampled_softmax_loss

__all__ = ["rank_sampled_softmax_loss"]
