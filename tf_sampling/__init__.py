"""tf_sampling: candidate-sampling losses for TensorFlow 2 and Keras 3.

Submodules:
  nn: functional losses with TensorFlow's ``tf.compat.v1`` signatures.
  ops: candidate samplers, including this package's C++ learned-unigram op.
  layers, losses: Keras 3 output layers and losses.
  compat: the TF1 migration shim.
"""

import importlib

from tf_sampling.version import __version__

_SUBMODULES = ("nn", "ops", "layers", "losses", "samplers", "compat")


def __getattr__(name: str):
    # Lazy so that `import tf_sampling` stays cheap and never loads the op.
    if name in _SUBMODULES:
        return importlib.import_module(f"tf_sampling.{name}")
    raise AttributeError(f"module 'tf_sampling' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
