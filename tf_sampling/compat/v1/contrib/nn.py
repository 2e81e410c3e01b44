"""``tf.contrib.nn`` (TF 1.x) sampled losses: ``rank_sampled_softmax_loss`` and
``sampled_sparse_softmax_loss``, the functions of ``tf_sampling``'s core."""

from tf_sampling._core.sampled_losses import sampled_sparse_softmax_loss
from tf_sampling.nn import rank_sampled_softmax_loss

__all__ = ["rank_sampled_softmax_loss", "sampled_sparse_softmax_loss"]
