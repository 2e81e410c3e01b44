"""Migration shims for code written against older TensorFlow APIs.

``tf_sampling.compat.v1`` mirrors the TF 1.x names of the candidate-sampling
losses, so TF1 programs move to this package by changing their imports only.
"""

from tf_sampling.compat import v1

__all__ = ["v1"]
