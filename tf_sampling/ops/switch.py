"""The public switch between this package's C++ kernels and plain TensorFlow ops.

Where the package has both a compiled kernel and an equivalent made of
TensorFlow ops (``LazyAdam``'s sparse step), it asks :func:`custom_kernels_enabled`
which to build. The answer starts from the environment variable
``TF_SAMPLING_DISABLE_CUSTOM_KERNELS`` (read once, when ``tf_sampling.ops`` is
first imported: ``1``/``true``/``yes``/``on`` turn the kernels off,
``0``/``false``/``no``/``off`` or unset leave them on) and is changed in the
program by :func:`set_custom_kernels_enabled` or, for a block,
:func:`custom_kernels`.

The choice is made when a step is built: eagerly at each call, in a
``tf.function`` when it is traced (a function traced before the switch changed
keeps the path it was traced with). The switch is one per process, not per
thread. Ops that have no TensorFlow equivalent (the learned-unigram sampler's)
are not affected: they still load the library.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = [
    "DISABLE_ENV_VAR",
    "custom_kernels",
    "custom_kernels_enabled",
    "set_custom_kernels_enabled",
]

#: Set to 1 (or true/yes/on) to start with the custom kernels off.
DISABLE_ENV_VAR = "TF_SAMPLING_DISABLE_CUSTOM_KERNELS"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _enabled_by_environment(environ=os.environ) -> bool:
    """Whether ``environ`` leaves the custom kernels on (:data:`DISABLE_ENV_VAR` unset or false).

    Raises:
      ValueError: the variable holds anything but one of the words above.
    """
    value = environ.get(DISABLE_ENV_VAR, "")
    word = value.strip().lower()
    if word in _TRUE:
        return False
    if word in _FALSE:
        return True
    raise ValueError(
        f"Environment variable `{DISABLE_ENV_VAR}` must be one of {_TRUE + _FALSE[1:]} "
        f"(or unset). Received: {DISABLE_ENV_VAR}={value!r}"
    )


_enabled = _enabled_by_environment()


def custom_kernels_enabled() -> bool:
    """Returns whether the package builds its C++ kernels where it has a TF-ops equivalent.

    Returns:
      bool: True unless turned off by :data:`DISABLE_ENV_VAR` or
      :func:`set_custom_kernels_enabled` / :func:`custom_kernels`. True does
      not mean the library is built: where it cannot be loaded the TF ops run
      anyway (``tf_sampling.ops.lazy_adam_kernel_available()``).
    """
    return _enabled


def set_custom_kernels_enabled(enabled: bool) -> None:
    """Turns the package's C++ kernels on or off for the rest of the process.

    Off, ``LazyAdam``/``LazyAdamW`` build their sparse step from TensorFlow ops
    (the same bits, see ``docs/optimizers.md``) and do not load the library.

    Args:
      enabled: bool.

    Raises:
      TypeError: ``enabled`` is not a bool.
    """
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(
            f"Argument `enabled` must be a bool. Received: enabled={enabled!r} "
            f"of type {type(enabled).__name__}"
        )
    _enabled = enabled


@contextlib.contextmanager
def custom_kernels(enabled: bool) -> Iterator[None]:
    """Within the block, the C++ kernels are on (``True``) or off (``False``).

    The previous setting comes back when the block ends, also on an exception.

    Args:
      enabled: bool.

    Raises:
      TypeError: ``enabled`` is not a bool.

    Example:
      ```python
      with tf_sampling.ops.custom_kernels(False):
          model.fit(x, y)  # LazyAdam's TF-ops path
      ```
    """
    previous = _enabled
    set_custom_kernels_enabled(enabled)
    try:
        yield
    finally:
        set_custom_kernels_enabled(previous)
