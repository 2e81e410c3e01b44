"""This package's C++ TensorFlow ops: a candidate sampler and LazyAdam's fused update.

``learned_unigram_candidate_sampler`` has the signature and behaviour of
``tf.random.learned_unigram_candidate_sampler``;
``resource_sparse_apply_lazy_adam`` is the sparse step of
``tf_sampling.optimizers.LazyAdam`` in one kernel. Their compiled library
(``_tf_sampling_ops.so``, built by ``bash custom_ops/build.sh`` or
``pip install --no-build-isolation .``) is loaded lazily, on the first call:
importing this module does not load it. Call ``load_op_library()`` yourself
before ``tf.saved_model.load`` of a model that contains these ops.
"""

from tf_sampling.ops._loader import OpLibraryError, is_loaded, library_path, load_op_library
from tf_sampling.ops.lazy_adam import lazy_adam_kernel_available, resource_sparse_apply_lazy_adam
from tf_sampling.ops.learned_unigram import learned_unigram_candidate_sampler

__all__ = [
    "OpLibraryError",
    "is_loaded",
    "lazy_adam_kernel_available",
    "learned_unigram_candidate_sampler",
    "library_path",
    "load_op_library",
    "resource_sparse_apply_lazy_adam",
]
