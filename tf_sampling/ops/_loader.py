"""Lazy loading of tf_sampling's compiled op library.

The shared library ``_tf_sampling_ops.so`` is built by Bazel
(``bash custom_ops/build.sh``, which ``pip install --no-build-isolation .``
runs) against one TensorFlow version and sits next to this file. Nothing loads
it at import time: ``load_op_library()`` does on first use of a learned-unigram
sampler or of ``LazyAdam``'s fused update. Before calling ``tf.load_op_library`` the loader checks the
TensorFlow version recorded in the binary, so a stale build gives a clear
message instead of an obscure dlopen failure or crash.
"""

from __future__ import annotations

import pathlib
import re
import threading
import types

import tensorflow as tf

__all__ = ["OpLibraryError", "library_path", "load_op_library"]

LIBRARY_NAME = "_tf_sampling_ops.so"

#: Op names in the library; all are registered as not differentiable.
OP_NAMES = (
    "TfSampling>LearnedUnigramCandidateSampler",
    "TfSampling>LearnedUnigramSampleAndUpdate",
    "TfSampling>LearnedUnigramTreeToCounts",
    "TfSampling>LearnedUnigramCountsToTree",
    "TfSampling>ResourceSparseApplyLazyAdam",
)

_BUILD_HINT = (
    "Build it with `bash custom_ops/build.sh` in a source checkout (needs Bazel and the "
    "TensorFlow you run), or reinstall the package with `pip install --no-build-isolation .`."
)
_TAG = re.compile(rb"tf_sampling:built-against-tensorflow=([0-9A-Za-z.+\-]+);")

_lock = threading.Lock()
_library: types.ModuleType | None = None
# Tests point this elsewhere to exercise the error paths.
_path_override: pathlib.Path | None = None


class OpLibraryError(ImportError):
    """tf_sampling's C++ op library is missing, stale, or failed to load."""


def library_path() -> pathlib.Path:
    """Returns where the op library is expected.

    Returns:
      pathlib.Path: ``tf_sampling/ops/_tf_sampling_ops.so`` in the
      installed (or source) package.
    """
    if _path_override is not None:
        return _path_override
    return pathlib.Path(__file__).resolve().with_name(LIBRARY_NAME)


def built_tf_version(path: pathlib.Path) -> str | None:
    """Returns the TensorFlow version recorded in the library at ``path``.

    Args:
      path: The shared library.

    Returns:
      str or None: e.g. ``"2.21.0"``; None if the file carries no tag.
    """
    match = _TAG.search(path.read_bytes())
    return match.group(1).decode("ascii") if match else None


def load_op_library() -> types.ModuleType:
    """Loads the op library once (thread-safe) and returns its op module.

    Returns:
      The module ``tf.load_op_library`` returns, with the Python op wrappers
      (``tf_sampling_learned_unigram_candidate_sampler``, ...).

    Raises:
      OpLibraryError: the library is missing, was built for another
        TensorFlow version, or TensorFlow cannot load it. The message says how
        to rebuild it.
    """
    global _library
    with _lock:
        if _library is not None:
            return _library
        path = library_path()
        if not path.is_file():
            raise OpLibraryError(
                f"tf_sampling's C++ op library is missing: {path} does not exist. {_BUILD_HINT}"
            )
        built = built_tf_version(path)
        if built is None:
            raise OpLibraryError(
                f"{path} carries no TensorFlow version tag, so it was not built by "
                f"custom_ops/build.sh. {_BUILD_HINT}"
            )
        if built != tf.version.VERSION:
            raise OpLibraryError(
                f"{path} was built against TensorFlow {built}, but TensorFlow "
                f"{tf.version.VERSION} is running; C++ ops must be rebuilt for each "
                f"TensorFlow version. {_BUILD_HINT}"
            )
        try:
            library = tf.load_op_library(str(path))
        except (tf.errors.OpError, OSError) as err:
            raise OpLibraryError(
                f"TensorFlow {tf.version.VERSION} failed to load {path}: {err}. {_BUILD_HINT}"
            ) from err
        for op_name in OP_NAMES:
            try:
                tf.no_gradient(op_name)
            except KeyError:  # Already registered by an earlier load.
                pass
        _library = library
        return _library


def is_loaded() -> bool:
    """Returns whether ``load_op_library`` has loaded the library in this process."""
    return _library is not None
