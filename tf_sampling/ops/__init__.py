"""This package's C++ TensorFlow ops: a candidate sampler and LazyAdam's fused update.

``learned_unigram_candidate_sampler`` has the signature and behaviour of
``tf.random.learned_unigram_candidate_sampler``;
``resource_sparse_apply_lazy_adam`` is the sparse step of
``tf_sampling.optimizers.LazyAdam`` in one kernel. Their compiled library
(``_tf_sampling_ops.so``, built by ``bash custom_ops/build.sh`` or
``pip install --no-build-isolation .``) is loaded lazily, on the first call:
importing this module does not load it. Call ``load_op_library()`` yourself
before ``tf.saved_model.load`` of a model that contains these ops.

``set_custom_kernels_enabled(False)`` (or ``custom_kernels(False)`` for a block,
or ``TF_SAMPLING_DISABLE_CUSTOM_KERNELS=1`` in the environment) makes the
package use its TensorFlow-ops equivalents instead of the kernels where it has
them (``LazyAdam``'s sparse step); ``custom_kernels_enabled()`` tells.
"""

from tf_sampling.ops._loader import OpLibraryError, is_loaded, library_path, load_op_library
from tf_sampling.ops.lazy_adam import lazy_adam_kernel_available, resource_sparse_apply_lazy_adam
from tf_sampling.ops.learned_unigram import learned_unigram_candidate_sampler
from tf_sampling.ops.switch import (
    custom_kernels,
    custom_kernels_enabled,
    set_custom_kernels_enabled,
)

__all__ = [
    "OpLibraryError",
    "custom_kernels",
    "custom_kernels_enabled",
    "is_loaded",
    "lazy_adam_kernel_available",
    "learned_unigram_candidate_sampler",
    "library_path",
    "load_op_library",
    "resource_sparse_apply_lazy_adam",
    "set_custom_kernels_enabled",
]
