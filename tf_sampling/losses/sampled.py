"""``SampledSoftmaxLoss``, ``NCELoss``, ``RankSampledSoftmaxLoss`` for ``model.compile``.

How a loss finds the class weights
----------------------------------
The weights are variables of a ``tf_sampling.layers`` output layer in the
model (Keras only trains and saves variables that layers own). That layer
tags every tensor it returns (``tf_sampling.layers._tags``), so the loss reads
the layer off ``y_pred``:

* ``y_pred`` is the hidden activations (``fit``, the layer called with
  ``training=True``): the loss runs the sampled loss of ``tf_sampling.nn``
  with the layer's weights, biases, sampler and options. ``fit``'s gradient
  tape records this, so the layer's weights train, with sparse gradients.
* ``y_pred`` is full logits or probabilities (``evaluate``): the loss returns
  the exact full-softmax cross-entropy (full sigmoid cross-entropy for
  ``NCELoss``).

The loss stores no reference to the layer, so it needs no arguments, is
rebuilt by name (``keras.losses.deserialize("tf_sampling>SampledSoftmaxLoss")``)
and keeps working after ``keras.models.load_model``. You may still pass
``layer=`` explicitly (not saved), and any sampling option given to the loss
overrides the layer's.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling import nn
from tf_sampling import samplers as samplers_module
from tf_sampling.layers import _tags, _targets
from tf_sampling.layers.base import SampledOutputLayer, check_options
from tf_sampling.layers.rank_sampled_softmax import RankSampledSoftmax, check_resampling


class SampledLoss(keras.losses.Loss):
    """Base of the sampled losses; see the module docstring.

    Args:
      num_classes: Optional int; must equal the layer's when given.
      num_sampled: Optional int; overrides the layer's.
      num_true: Optional int; overrides the layer's.
      sampler: Optional sampler name or dict (see ``tf_sampling.samplers``);
        overrides the layer's. A ``"learned_unigram"`` sampler given here keeps
        its counts in the loss, which Keras does not save: set it on the layer.
      remove_accidental_hits: Optional bool; overrides the layer's.
      seed: Optional int, seed of the loss's own sampler.
      layer: Optional output layer to use instead of the one tagged on
        ``y_pred`` (not saved with the model).
      reduction: Keras reduction, default ``"sum_over_batch_size"``.
      name: Loss name.
      dtype: Keras loss dtype (default float32).
    """

    objective = _targets.SOFTMAX

    def __init__(
        self,
        num_classes: int | None = None,
        num_sampled: int | None = None,
        num_true: int | None = None,
        sampler=None,
        remove_accidental_hits: bool | None = None,
        seed: int | None = None,
        layer: SampledOutputLayer | None = None,
        reduction="sum_over_batch_size",
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        # Validate with placeholders for what the layer will provide.
        check_options(
            2**62 if num_classes is None else num_classes,
            1 if num_sampled is None else num_sampled,
            1 if num_true is None else num_true,
            seed,
            unique=False,
        )
        self._sampler_object = None
        if sampler is not None and num_classes is not None:
            # Built now, outside any tf.function, in case it creates variables.
            self._sampler_object = samplers_module.get(sampler, num_classes, seed=seed)
            if num_sampled is not None:
                unique = bool(getattr(self._sampler_object, "unique", True))
                check_options(num_classes, num_sampled, 1, None, unique)
        if remove_accidental_hits is not None and not isinstance(remove_accidental_hits, bool):
            raise TypeError(
                f"`remove_accidental_hits` must be a bool or None, got {remove_accidental_hits!r}."
            )
        if layer is not None and not isinstance(layer, SampledOutputLayer):
            raise TypeError(
                f"`layer` must be a tf_sampling.layers output layer, got {type(layer).__name__}."
            )
        self.num_classes = num_classes
        self.num_sampled = num_sampled
        self.num_true = num_true
        self.sampler = sampler
        self.remove_accidental_hits = remove_accidental_hits
        self.seed = seed
        self.layer = layer
        self._originals = None

    # ---------------------------------------------------------------- calls
    def __call__(self, y_true, y_pred, sample_weight=None):
        # keras.losses.Loss.__call__ casts y_true and y_pred to the loss dtype
        # before `call`: that would turn class ids into floats and drop the
        # layer's tag. Keep the originals for `call`; reduction, masking and
        # sample weights stay Keras' own.
        self._originals = (y_true, y_pred)
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._originals = None

    def call(self, y_true, y_pred):
        """Per-example loss.

        Args:
          y_true: int ``[*batch]`` or ``[*batch, num_true]`` class ids.
          y_pred: The output layer's output: hidden ``[*batch, dim]`` while
            training, logits/probabilities ``[*batch, num_classes]`` otherwise.

        Returns:
          tf.Tensor: float32 ``[*batch]``.
        """
        if self._originals is not None:
            y_true, y_pred = self._originals
        layer, kind = self._resolve(y_pred)
        num_true = self.num_true or layer.num_true
        labels = _targets.flatten_labels(y_true, y_pred, num_true, layer.num_classes)
        rows = _targets.flatten_features(y_pred)
        if kind == _tags.HIDDEN:
            per_row = self._sampled_loss(layer, labels, rows, num_true)
        else:
            probabilities_of = layer.objective if kind == _tags.PROBABILITIES else None
            logits = _targets.as_logits(rows, probabilities_of)
            per_row = _targets.full_cross_entropy(
                labels, logits, num_true, layer.num_classes, self.objective
            )
        return _targets.unflatten(tf.cast(per_row, tf.float32), y_pred)

    def _resolve(self, y_pred) -> tuple:
        tag = _tags.get_tag(y_pred)
        layer = self.layer or (tag.layer if tag is not None else None)
        if layer is None:
            raise ValueError(
                f"{type(self).__name__} could not find its output layer: y_pred of shape "
                f"{getattr(y_pred, 'shape', None)} was not produced by a tf_sampling.layers "
                "layer. Make a SampledSoftmax/NCE/RankSampledSoftmax layer the model's output "
                "(with nothing after it), or pass layer=... to the loss."
            )
        if self.num_classes is not None and self.num_classes != layer.num_classes:
            raise ValueError(
                f"{type(self).__name__} has num_classes={self.num_classes} but layer "
                f"'{layer.name}' has num_classes={layer.num_classes}."
            )
        if tag is not None and tag.layer is layer:
            return layer, tag.kind
        # Explicit layer and an untagged tensor: tell hidden from logits by size.
        last = y_pred.shape[-1]
        if last == layer.num_classes and last != getattr(layer, "input_dim", None):
            return layer, _tags.PROBABILITIES if layer.output_mode != "logits" else _tags.LOGITS
        if last == getattr(layer, "input_dim", None):
            return layer, _tags.HIDDEN
        raise ValueError(
            f"{type(self).__name__}: y_pred of shape {y_pred.shape} is neither the hidden "
            f"activations (dim={getattr(layer, 'input_dim', None)}) nor the logits "
            f"(num_classes={layer.num_classes}) of layer '{layer.name}'."
        )

    def _sampler_for(self, layer):
        if self._sampler_object is not None:
            return self._sampler_object
        if self.sampler is None and self.seed is None:
            return layer.sampler
        identifier = self.sampler or samplers_module.serialize(layer.sampler)
        self._sampler_object = samplers_module.get(identifier, layer.num_classes, seed=self.seed)
        return self._sampler_object

    def _options(self, layer, num_true) -> tuple:
        """Returns the functional loss's keyword arguments and the sampler to use."""
        sampler = self._sampler_for(layer)
        num_sampled = self.num_sampled or layer.num_sampled
        check_options(
            layer.num_classes, num_sampled, num_true, None, bool(getattr(sampler, "unique", True))
        )
        return dict(
            weights=layer.kernel,
            biases=layer.bias,
            num_sampled=num_sampled,
            num_classes=layer.num_classes,
            num_true=num_true,
            remove_accidental_hits=(
                layer.remove_accidental_hits
                if self.remove_accidental_hits is None
                else self.remove_accidental_hits
            ),
            partition_strategy=layer.partition_strategy,
        ), sampler

    def _sampled_loss(self, layer, labels, inputs, num_true) -> tf.Tensor:
        raise NotImplementedError

    # --------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_sampled=self.num_sampled,
            num_true=self.num_true,
            sampler=self.sampler,
            remove_accidental_hits=self.remove_accidental_hits,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="tf_sampling")
class SampledSoftmaxLoss(SampledLoss):
    """Sampled softmax in ``fit``, exact full-softmax cross-entropy in ``evaluate``.

    Pair it with a ``tf_sampling.layers`` output layer (usually
    ``SampledSoftmax``) as the model's output::

        model.compile("adam", loss=tf_sampling.losses.SampledSoftmaxLoss())

    Takes the ``SampledLoss`` arguments (all optional: the layer provides them).
    """

    def _sampled_loss(self, layer, labels, inputs, num_true):
        options, sampler = self._options(layer, num_true)
        options["sampled_values"] = sampler.sample(labels, num_true, options["num_sampled"])
        return nn.sampled_softmax_loss(labels=labels, inputs=inputs, **options)


@keras.saving.register_keras_serializable(package="tf_sampling")
class NCELoss(SampledLoss):
    """NCE in ``fit``, exact full sigmoid cross-entropy (summed over classes) in ``evaluate``.

    Pair it with ``tf_sampling.layers.NCE``. Takes the ``SampledLoss``
    arguments.
    """

    objective = _targets.SIGMOID

    def _sampled_loss(self, layer, labels, inputs, num_true):
        options, sampler = self._options(layer, num_true)
        options["sampled_values"] = sampler.sample(labels, num_true, options["num_sampled"])
        return nn.nce_loss(labels=labels, inputs=inputs, **options)


@keras.saving.register_keras_serializable(package="tf_sampling")
class RankSampledSoftmaxLoss(SampledLoss):
    """TAPAS in ``fit``, exact full-softmax cross-entropy in ``evaluate``.

    Pair it with ``tf_sampling.layers.RankSampledSoftmax``, whose
    ``num_resampled`` and (variable) ``resampling_temperature`` it uses.

    Args:
      num_resampled: Optional int; overrides the layer's (required with a
        layer that is not a ``RankSampledSoftmax``).
      resampling_temperature: Optional float > 0; overrides the layer's
        variable (required with a layer that is not a ``RankSampledSoftmax``).
      **kwargs: ``SampledLoss`` arguments.
    """

    def __init__(self, num_resampled: int | None = None, resampling_temperature=None, **kwargs):
        super().__init__(**kwargs)
        if num_resampled is not None or resampling_temperature is not None:
            check_resampling(
                1 if num_resampled is None else num_resampled,
                2**62 if kwargs.get("num_sampled") is None else kwargs["num_sampled"],
                1.0 if resampling_temperature is None else resampling_temperature,
            )
        self.num_resampled = num_resampled
        self.resampling_temperature = resampling_temperature

    def _sampled_loss(self, layer, labels, inputs, num_true):
        options, sampler = self._options(layer, num_true)
        is_rank = isinstance(layer, RankSampledSoftmax)
        num_resampled = self.num_resampled or (layer.num_resampled if is_rank else None)
        temperature = self.resampling_temperature
        if temperature is None and is_rank:
            temperature = layer.resampling_temperature.value
        if num_resampled is None or temperature is None:
            raise ValueError(
                "RankSampledSoftmaxLoss needs `num_resampled` and `resampling_temperature`: set "
                f"them on the loss, or use a RankSampledSoftmax layer (got '{layer.name}')."
            )
        check_resampling(num_resampled, options["num_sampled"], 1.0)
        options["sampled_values"] = sampler.sample(labels, num_true, options["num_sampled"])
        return nn.rank_sampled_softmax_loss(
            labels=labels,
            inputs=inputs,
            num_resampled=num_resampled,
            resampling_temperature=temperature,
            **options,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_resampled=self.num_resampled, resampling_temperature=self.resampling_temperature
        )
        return config
