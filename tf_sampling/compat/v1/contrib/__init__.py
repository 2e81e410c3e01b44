"""Replacements for the parts of ``tf.contrib`` this package covers."""

from tf_sampling.compat.v1.contrib import nn

__all__ = ["nn"]
