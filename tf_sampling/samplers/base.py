"""What every sampler of the package is: one protocol, and the one registry of them.

A sampler draws the negative classes of one training step::

    sampled, true_expected, sampled_expected = sampler.sample(true_classes, num_true, num_sampled)

and says what it is by four things, whatever its kind (a ``tf.random`` op
wrapper, a Keras layer on this package's C++ op, a compilable layer in plain
TensorFlow ops):

* ``sampler_name``: its distribution, the name ``tf_sampling.samplers.get``
  and layer configs use (``"log_uniform"``, ``"uniform"``, ``"fixed_unigram"``,
  ``"learned_unigram"``);
* ``sampler_options()``: the distribution's own options, what
  ``tf_sampling.samplers.serialize`` stores (``range_max`` and ``seed`` are not
  among them: layers hold those);
* ``unique``: whether the candidates of one call are distinct;
* ``compilable``: whether an XLA-compiled step can call it.

The registry maps each name to the classes of that distribution, one
``tf.random``-style (``compilable=False``) and one compilable; every class
files itself with :func:`register`. A custom object needs only ``sample`` (it
is then neither serialized nor compiled).
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from tf_sampling._core.checks import check_choice, check_int
from tf_sampling._core.sampler_args import check_sample_size, check_sampler_options

__all__ = ["Sampler", "build", "names", "register", "sampler_class"]

SampledValues = tuple[tf.Tensor, tf.Tensor, tf.Tensor]


class Sampler:
    """The protocol of the package's samplers (a mixin: it holds no state of its own).

    Attributes:
      sampler_name: Class attribute, the distribution's name.
      compilable: Class attribute, whether an XLA-compiled step can call ``sample``.
      option_names: Class attribute, the distribution's own constructor
        options beyond ``range_max``, ``unique`` and ``seed``.
      range_max: int, number of classes; candidates are in ``[0, range_max)``.
      unique: bool, whether the ``num_sampled`` candidates of a call differ.
      seed: Optional int, the op-level seed or stream key.
    """

    sampler_name: ClassVar[str] = ""
    compilable: ClassVar[bool] = False
    option_names: ClassVar[tuple[str, ...]] = ()

    range_max: int
    unique: bool
    seed: int | None

    def sample(self, true_classes, num_true: int, num_sampled: int) -> SampledValues:
        """Draws ``num_sampled`` candidates for a batch.

        Args:
          true_classes: int ``[batch_size, num_true]`` target classes.
          num_true: int >= 1, number of target classes per example.
          num_sampled: int >= 1, number of candidates.

        Returns:
          tuple: ``sampled_candidates`` int64 ``[num_sampled]``,
          ``true_expected_count`` float32 ``[batch_size, num_true]``,
          ``sampled_expected_count`` float32 ``[num_sampled]``, gradients stopped.
        """
        raise NotImplementedError

    def sampler_options(self) -> dict:
        """The distribution's own options: what ``tf_sampling.samplers.serialize`` stores."""
        return {"unique": self.unique}

    def _set_sampler_options(self, range_max, unique, seed) -> None:
        """Checks and sets ``range_max``, ``unique`` and ``seed`` (every sampler has them)."""
        self.range_max, self.unique, self.seed = check_sampler_options(range_max, unique, seed)

    def _check_call(self, num_true, num_sampled) -> tuple[int, int]:
        """Checks a ``sample`` call's ``num_true`` and ``num_sampled``; returns them as ints."""
        num_true = check_int(num_true, "num_true")
        num_sampled = check_int(num_sampled, "num_sampled")
        self._check_sample_size(num_sampled)
        return num_true, num_sampled

    def _check_sample_size(self, num_sampled: int) -> None:
        # TF's own message for this is "Sampler's range is too small".
        check_sample_size(num_sampled, self.unique, self.range_max)


# name -> {compilable: class}: the tf.random-style class (False) and the compilable one (True).
_REGISTRY: dict[str, dict[bool, type[Sampler]]] = {}


def register(cls: type[Sampler]) -> type[Sampler]:
    """Class decorator: files ``cls`` under its ``sampler_name`` and ``compilable``."""
    _REGISTRY.setdefault(cls.sampler_name, {})[cls.compilable] = cls
    return cls


def names() -> tuple[str, ...]:
    """The registered distribution names."""
    return tuple(_REGISTRY)


def sampler_class(name, compilable: bool = False) -> type[Sampler]:
    """The class of distribution ``name``: ``tf.random``-style, or compilable.

    Raises:
      ValueError: an unknown name.
    """
    check_choice(name, "sampler", names())
    return _REGISTRY[name][bool(compilable)]


def build(
    name,
    num_classes: int,
    unique: bool = True,
    seed: int | None = None,
    compilable=False,
    **options,
) -> Sampler:
    """A new sampler of distribution ``name`` over ``[0, num_classes)``.

    Args:
      name: A name of :func:`names`.
      num_classes: int, the sampler's ``range_max``.
      unique: bool, sample without replacement.
      seed: Optional int, op-level seed (compilable: the stream key).
      compilable: bool, the compilable class of the distribution.
      **options: The distribution's own options (``option_names`` of its class).

    Returns:
      Sampler.

    Raises:
      ValueError: an unknown name or option, or a bad value.
      TypeError: a value of the wrong type.
    """
    cls = sampler_class(name, check_choice(compilable, "compilable", (False, True)))
    unknown = sorted(set(options) - set(cls.option_names))
    if unknown:
        kind = "compilable " if cls.compilable else ""
        raise ValueError(
            f"Argument `sampler` options of the {kind}{name!r} sampler must be among "
            f"{cls.option_names} (with `unique` and `seed`). Received: {unknown}"
        )
    return cls(num_classes, unique=unique, seed=seed, **options)
