"""Checks, on ``import tf_sampling``, that one supported TensorFlow is installed.

The package does not require TensorFlow in its metadata (``tensorflow``,
``tensorflow-cpu`` and ``tensorflow[and-cuda]`` all provide the same module,
and requiring one would install it beside another), so this module is where a
missing, doubled or out-of-range TensorFlow is caught, with the command that
fixes it. The range comes from ``tf_sampling/version.py``. Importing this
module runs the check; ``tf_sampling/__init__.py`` imports it first.
"""

from __future__ import annotations

import importlib.metadata
import re
import warnings

from tf_sampling import version

__all__ = [
    "check_tensorflow_version",
    "ensure_supported_tensorflow",
    "installed_tensorflow_distributions",
    "parse_version",
]

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def _install_hint() -> str:
    cpu = version.tensorflow_requirement("tensorflow-cpu")
    cuda = version.tensorflow_requirement("tensorflow[and-cuda]")
    return (
        f'Install one TensorFlow in the supported range first, e.g. `pip install "{cpu}"` '
        f'(CPU only) or `pip install "{cuda}"` (NVIDIA GPUs), then rebuild this package '
        "with `pip install --no-build-isolation .` so its op matches that TensorFlow."
    )


def parse_version(text: str) -> tuple[int, int, int]:
    """Returns ``(major, minor, patch)`` of a TensorFlow version string.

    Args:
      text: str, e.g. ``"2.21.0"``, ``"2.16.0rc1"`` or ``"2.22.0-dev20250101"``.

    Returns:
      tuple of 3 ints; a missing patch number reads as 0.

    Raises:
      ValueError: ``text`` does not start with ``major.minor``.
    """
    match = _VERSION_RE.match(str(text))
    if match is None:
        raise ValueError(f"`text` must be a version such as '2.21.0', got {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def check_tensorflow_version(tf_version: str) -> None:
    """Raises or warns if ``tf_version`` is outside ``tf_sampling.version``'s range.

    Below the range (no Keras 3) nothing of this package works, so that is an
    error. Above it (a newer release than this version was tested with) the
    Python parts may work; a warning says so, and the op loader still refuses a
    library built for another TensorFlow.

    Args:
      tf_version: str, the running TensorFlow's ``tf.version.VERSION``.

    Raises:
      ImportError: ``tf_version`` is older than ``version.MIN_TF_VERSION`` or
        is not a version string.
    """
    low, high = version.MIN_TF_VERSION, version.MAX_TF_VERSION_EXCLUSIVE
    try:
        found = parse_version(tf_version)
    except ValueError:
        raise ImportError(
            f"tf_sampling cannot read the TensorFlow version {tf_version!r}; it supports "
            f"TensorFlow >={low},<{high}. {_install_hint()}"
        ) from None
    if found < parse_version(low):
        raise ImportError(
            f"tf_sampling {version.__version__} needs TensorFlow >={low},<{high} (Keras 3), "
            f"got TensorFlow {tf_version}. {_install_hint()}"
        )
    if found >= parse_version(high):
        warnings.warn(
            f"tf_sampling {version.__version__} was tested with TensorFlow >={low},<{high}, "
            f"got TensorFlow {tf_version}; some parts may not work. Its op must be rebuilt "
            "for this TensorFlow (`pip install --no-build-isolation .`).",
            UserWarning,
            stacklevel=2,
        )


def installed_tensorflow_distributions() -> dict[str, str]:
    """Returns ``{distribution name: version}`` of the installed TensorFlow packages.

    Returns:
      dict: e.g. ``{"tensorflow-cpu": "2.16.2"}``; more than one entry means
      several distributions wrote the same ``tensorflow/`` directory.
    """
    found = {}
    for name in version.TF_DISTRIBUTION_NAMES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def ensure_supported_tensorflow() -> None:
    """Imports TensorFlow and checks it, with a clear ImportError when it is unusable.

    Raises:
      ImportError: TensorFlow is missing; two TensorFlow distributions of
        different versions are installed together (checked before importing
        it, whose own failure would then be an obscure undefined symbol); or
        its version is below the supported range.
    """
    distributions = installed_tensorflow_distributions()
    if len(distributions) > 1:
        listed = ", ".join(f"{name} {ver}" for name, ver in sorted(distributions.items()))
        advice = (
            f"Several TensorFlow distributions are installed in one environment ({listed}); "
            "they overwrite each other's files. Uninstall all of them (`pip uninstall "
            f"{' '.join(sorted(distributions))}`), install the one you want, then rebuild "
            "tf_sampling (`pip install --no-build-isolation .`)."
        )
        # Same version: the files mostly agree and TensorFlow may still import.
        if len(set(distributions.values())) > 1:
            raise ImportError(advice)
        warnings.warn(advice, UserWarning, stacklevel=2)
    try:
        import tensorflow as tf
    except ModuleNotFoundError as err:
        if err.name != "tensorflow":
            raise
        raise ImportError(
            f"tf_sampling needs TensorFlow, which is not installed. {_install_hint()}"
        ) from err
    check_tensorflow_version(tf.version.VERSION)


ensure_supported_tensorflow()
