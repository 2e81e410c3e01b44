"""Candidate-sampling losses with TensorFlow's ``tf.compat.v1`` signatures.

``sampled_softmax_loss`` and ``nce_loss`` match ``tf.compat.v1.nn.*`` argument
for argument; ``rank_sampled_softmax_loss`` matches TF 1.x
``tf.contrib.nn.rank_sampled_softmax_loss``.

Without ``sampled_values``, inside ``tf.function(jit_compile=True)`` (where
TensorFlow's sampler ops cannot run) the losses draw from the compilable
sampler of their default distribution: see ``tf_sampling.samplers.xla_defaults``.
"""

from __future__ import annotations

import functools

from tf_sampling._core import rank_sampled_softmax as _rank
from tf_sampling._core import sampled_losses as _losses
from tf_sampling._core import validation
from tf_sampling._core.full_softmax import (
    full_sigmoid_cross_entropy,
    full_softmax_cross_entropy,
    full_top_k,
)
from tf_sampling._core.xla import in_xla_context
from tf_sampling.samplers import xla_defaults

__all__ = [
    "full_sigmoid_cross_entropy",
    "full_softmax_cross_entropy",
    "full_top_k",
    "nce_loss",
    "rank_sampled_softmax_loss",
    "sampled_softmax_loss",
]


def _compiled_default(sampler_name, labels, inputs, num_sampled, num_classes, num_true, seed):
    """The default sampler's triple under XLA, after the checks the loss makes first."""
    num_true = validation.check_int(num_true, "num_true")
    num_classes = validation.check_int(num_classes, "num_classes")
    num_sampled = validation.check_num_sampled(num_sampled, num_classes, unique=True)
    seed = validation.check_seed(seed)
    inputs = validation.check_inputs(inputs)
    batch_size = validation.static_or_dynamic_batch_size(inputs)
    labels = validation.normalize_labels(
        labels, num_true, num_classes, batch_size, check_range=False
    )
    return xla_defaults.sample(
        sampler_name, labels, num_true, num_sampled, num_classes, unique=True, seed=seed
    )


@functools.wraps(_losses.sampled_softmax_loss)
def sampled_softmax_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true=1,
    sampled_values=None,
    remove_accidental_hits=True,
    partition_strategy="mod",
    name="sampled_softmax_loss",
    seed=None,
):
    if sampled_values is None and in_xla_context():
        sampled_values = _compiled_default(
            "log_uniform", labels, inputs, num_sampled, num_classes, num_true, seed
        )
    return _losses.sampled_softmax_loss(
        weights,
        biases,
        labels,
        inputs,
        num_sampled,
        num_classes,
        num_true,
        sampled_values,
        remove_accidental_hits,
        partition_strategy,
        name,
        seed,
    )


@functools.wraps(_losses.nce_loss)
def nce_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true=1,
    sampled_values=None,
    remove_accidental_hits=False,
    partition_strategy="mod",
    name="nce_loss",
):
    if sampled_values is None and in_xla_context():
        # TensorFlow's nce_loss has no seed argument: its sampler's op seed is None.
        sampled_values = _compiled_default(
            "log_uniform", labels, inputs, num_sampled, num_classes, num_true, None
        )
    return _losses.nce_loss(
        weights,
        biases,
        labels,
        inputs,
        num_sampled,
        num_classes,
        num_true,
        sampled_values,
        remove_accidental_hits,
        partition_strategy,
        name,
    )


@functools.wraps(_rank.rank_sampled_softmax_loss)
def rank_sampled_softmax_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_resampled,
    num_classes,
    num_true,
    sampled_values,
    resampling_temperature,
    remove_accidental_hits,
    partition_strategy,
    name=None,
):
    if sampled_values is None and in_xla_context():
        # Checked before any draw, as the loss checks it before its sampler.
        num_classes = validation.check_int(num_classes, "num_classes")
        validation.check_num_resampled(
            num_resampled, validation.check_num_sampled(num_sampled, num_classes, unique=True)
        )
        sampled_values = _compiled_default(
            "learned_unigram", labels, inputs, num_sampled, num_classes, num_true, None
        )
    return _rank.rank_sampled_softmax_loss(
        weights,
        biases,
        labels,
        inputs,
        num_sampled,
        num_resampled,
        num_classes,
        num_true,
        sampled_values,
        resampling_temperature,
        remove_accidental_hits,
        partition_strategy,
        name,
    )
