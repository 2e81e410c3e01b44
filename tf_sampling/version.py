"""Package version and the TensorFlow versions this release supports.

This file is the one place that states the supported TensorFlow range:
``setup.py`` (the extras), ``scripts/setup.sh``, ``scripts/test_tf_window.sh``,
the import-time check (``tf_sampling._tf_version_check``) and the README test
all read it. It must stay importable without TensorFlow: ``setup.py`` and the
scripts execute it on its own, before TensorFlow is installed.
"""

__version__ = "0.1.0"

# Keras 3 arrived with TF 2.16; the op is built against the installed TF, so
# the upper bound is the newest minor release this version was tested with.
MIN_TF_VERSION = "2.16.0"
MAX_TF_VERSION_EXCLUSIVE = "2.22.0"

#: The oldest and newest TensorFlow releases the test suite is run on
#: (``bash scripts/test_tf_window.sh`` with no arguments tests these two).
TESTED_TF_VERSIONS = ("2.16.2", "2.21.0")

#: This package's extras, each naming one pip distribution of TensorFlow:
#: ``pip install --no-build-isolation ".[tensorflow-cpu]"`` and so on. They all
#: write the same ``tensorflow/`` directory, so an environment must hold exactly
#: one of them; the package itself therefore requires none (as TF-Addons does).
TF_EXTRAS = {
    "tensorflow": "tensorflow",
    "tensorflow-cpu": "tensorflow-cpu",
    "and-cuda": "tensorflow[and-cuda]",
}

#: Every pip distribution that writes the ``tensorflow/`` package directory on
#: Linux and macOS (on Windows ``tensorflow`` depends on ``tensorflow-intel``,
#: a legitimate pair, so that one is not listed).
TF_DISTRIBUTION_NAMES = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tf-nightly",
    "tf-nightly-cpu",
)


def tensorflow_requirement(distribution: str = "tensorflow") -> str:
    """Returns the pip requirement for ``distribution`` within the supported range.

    Args:
      distribution: str, a value of ``TF_EXTRAS``, e.g. ``"tensorflow-cpu"`` or
        ``"tensorflow[and-cuda]"``.

    Returns:
      str: e.g. ``"tensorflow-cpu>=2.16.0,<2.22.0"``.

    Raises:
      ValueError: ``distribution`` is not a value of ``TF_EXTRAS``.
    """
    if distribution not in TF_EXTRAS.values():
        raise ValueError(
            f"`distribution` must be one of {', '.join(TF_EXTRAS.values())}, got {distribution!r}"
        )
    return f"{distribution}>={MIN_TF_VERSION},<{MAX_TF_VERSION_EXCLUSIVE}"
