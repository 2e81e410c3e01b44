"""Candidate-sampler objects for the Keras layers and losses.

A sampler object draws the negative classes of one training step::

    sampler = tf_sampling.samplers.get("log_uniform", num_classes=10_000, seed=1)
    sampled, true_expected, sampled_expected = sampler.sample(labels, num_true, num_sampled)

``get`` accepts a name (``"log_uniform"``, ``"uniform"``, ``"fixed_unigram"``,
``"learned_unigram"``), a dict ``{"name": ..., **options}`` (what ``serialize``
returns and what layer configs store), or a sampler object (returned as is).
The option ``compilable=True`` (e.g. ``{"name": "log_uniform", "compilable":
True}``) gives the same distribution in plain TensorFlow ops, which
``jit_compile`` steps can run (``tf_sampling.samplers.compilable``).

Every sampler follows one protocol (``base.Sampler``: ``sampler_name``,
``sampler_options()``, ``unique``, ``compilable``) and is found in one
registry, name -> (``tf.random``-style class, compilable class).
"""

from __future__ import annotations

from tf_sampling._core.checks import check_flag

# The classes file themselves in the registry of `base` when imported;
# xla_defaults registers the functional losses' default sampler with the core.
from tf_sampling.samplers import base, compilable, xla_defaults
from tf_sampling.samplers.base import Sampler, names
from tf_sampling.samplers.builtin import (
    CandidateSampler,
    FixedUnigramSampler,
    LogUniformSampler,
    UniformSampler,
)

# Importing the module does not load the compiled op; its first sample does.
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler

__all__ = [
    "CandidateSampler",
    "FixedUnigramSampler",
    "LearnedUnigramSampler",
    "LogUniformSampler",
    "Sampler",
    "UniformSampler",
    "compilable",
    "get",
    "names",
    "serialize",
    "xla_defaults",
]

# Options at these values are left out of serialized identifiers.
_DEFAULTS = {"unique": True, "distortion": 1.0, "num_reserved_ids": 0}


def get(identifier, num_classes: int, unique: bool = True, seed: int | None = None, **kwargs):
    """Returns a sampler object over ``[0, num_classes)``.

    Args:
      identifier: A sampler name (see ``names()``), a dict ``{"name": name,
        **options}``, or an object with a ``sample(true_classes, num_true,
        num_sampled)`` method (returned unchanged).
      num_classes: int, number of classes (the sampler's ``range_max``).
      unique: bool, sample without replacement (a dict's ``"unique"`` wins).
      seed: Optional int, op-level seed.
      **kwargs: Further options of the sampler, e.g. ``unigrams``,
        ``vocab_file``, ``distortion`` for ``"fixed_unigram"``;
        ``compilable=True`` for the XLA-compilable sampler of that name.

    Returns:
      A sampler object.

    Raises:
      ValueError: unknown name, or options the sampler does not take.
      TypeError: ``identifier`` is none of the accepted kinds.
    """
    if hasattr(identifier, "sample") and callable(identifier.sample):
        return identifier
    if isinstance(identifier, dict):
        options = dict(identifier)
        if "name" not in options:
            raise ValueError(
                f"Argument `sampler`, given as a dict, must have a 'name' key (one of {names()}). "
                f"Received: sampler={identifier!r}"
            )
        name = options.pop("name")
        unique = options.pop("unique", unique)
        kwargs = {**options, **kwargs}
    elif isinstance(identifier, str):
        name = identifier
    else:
        raise TypeError(
            f"Argument `sampler` must be a name in {names()}, a dict with a 'name' key, or an "
            f"object with a `sample` method. Received: sampler={identifier!r}"
        )
    compiled = check_flag(kwargs.pop("compilable", False), "compilable")
    return base.build(name, num_classes, unique=unique, seed=seed, compilable=compiled, **kwargs)


def serialize(sampler) -> str | dict:
    """Returns the name, or ``{"name": ..., **options}``, that ``get`` rebuilds ``sampler`` from.

    ``range_max`` and ``seed`` are left out: layers store them separately.

    Args:
      sampler: A sampler object made by ``get``.

    Returns:
      str or dict: the bare name when every option is at its default.

    Raises:
      TypeError: ``sampler`` is not a sampler ``get`` can rebuild.
    """
    if not isinstance(sampler, Sampler) or sampler.sampler_name not in names():
        raise TypeError(
            f"Cannot serialize sampler {sampler!r}: pass a sampler name or dict instead of a "
            "custom object to layers you want to save."
        )
    options = sampler.sampler_options()
    if sampler.compilable:
        options["compilable"] = True
    options = {
        k: v
        for k, v in options.items()
        if v is not None and not (k in _DEFAULTS and _DEFAULTS[k] == v)
    }
    return {"name": sampler.sampler_name, **options} if options else sampler.sampler_name
