"""Package version and the TensorFlow versions this release supports."""

__version__ = "0.1.0"

# Keras 3 arrived with TF 2.16; the op is built against the installed TF, so
# the upper bound is the newest minor release this version was tested with.
MIN_TF_VERSION = "2.16.0"
MAX_TF_VERSION_EXCLUSIVE = "2.22.0"
