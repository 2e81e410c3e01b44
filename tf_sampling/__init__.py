"""tf_sampling: candidate-sampling losses for TensorFlow 2 and Keras 3.

Submodules:
  nn: functional losses with TensorFlow's ``tf.compat.v1`` signatures.
  ops: candidate samplers, including this package's C++ learned-unigram op
    (its library is loaded on first use, not on import).
  samplers: sampler objects; ``LearnedUnigramSampler`` keeps its counts as
    saved state.
  layers, losses, metrics: Keras 3 output layers, losses and exact metrics.
    Importing the package registers them with ``keras.saving``, so
    ``keras.models.load_model`` needs no ``custom_objects``.
  compat: the TF1 migration shim (``tf_sampling.compat.v1``).
"""

# First: a missing, doubled or unsupported TensorFlow fails here, saying how to fix it.
from tf_sampling import _tf_version_check  # noqa: F401

# isort: split
from tf_sampling import compat, layers, losses, metrics, nn, ops, optimizers, samplers
from tf_sampling.version import __version__

__all__ = [
    "__version__",
    "compat",
    "layers",
    "losses",
    "metrics",
    "nn",
    "ops",
    "optimizers",
    "samplers",
]
