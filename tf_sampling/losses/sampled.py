"""``SampledSoftmaxLoss``, ``NCELoss``, ``RankSampledSoftmaxLoss`` for ``model.compile``.

How a loss finds the class weights
----------------------------------
The weights are variables of an output layer (``SampledSoftmax``, ``NCE``,
``RankSampledSoftmax``) in the model (Keras only trains and saves variables
that layers own). That layer
tags every tensor it returns (``tf_sampling._keras.output_tags``), so the loss
reads the layer off ``y_pred``:

* ``y_pred`` is the hidden activations (``fit``, the layer called with
  ``training=True``): the loss runs the sampled loss of ``tf_sampling.nn``
  with the layer's weights, biases, sampler and options. ``fit``'s gradient
  tape records this, so the layer's weights train, with sparse gradients.
* ``y_pred`` is full logits or probabilities (``evaluate``): the loss returns
  the exact full-softmax cross-entropy (full sigmoid cross-entropy for
  ``NCELoss``), from the head's table in class blocks when ``y_pred`` is its
  own output, else from the dense logits; with ``padding_id`` too.

The loss stores no reference to the layer, so it needs no arguments, is
rebuilt by name (``keras.losses.deserialize("tf_sampling>SampledSoftmaxLoss")``)
and keeps working after ``keras.models.load_model``. You may still pass
``layer=`` explicitly (not saved), and any sampling option given to the loss
overrides the layer's. Which branch runs is decided by the tag; only an
untagged tensor with an explicit ``layer`` is told apart by its last
dimension, and a tensor that could be either is refused, never guessed.

The three losses differ only in the functional loss they call
(``sampled_loss_fn``), the full loss of evaluation (``objective``) and, for
TAPAS, two extra options (``_extra_options``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling import samplers as samplers_module
from tf_sampling._core import checks, label_sets, sampled_losses, xla
from tf_sampling._core.rank_sampled_softmax import rank_sampled_softmax_loss
from tf_sampling._keras import full_loss, output_tags
from tf_sampling._keras.options import check_resampling, check_sampling_options
from tf_sampling.losses.tagged_inputs import TaggedInputsLoss


class SampledLoss(TaggedInputsLoss):
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
      padding_id: Optional int, for a variable number of labels per example:
        ``y_true`` is ``[*batch, max_true]`` (``max_true`` the loss's or the
        layer's ``num_true``) with ``padding_id`` (outside ``[0,
        num_classes)``, e.g. -1) in the unused slots; each example's ``n_i``
        real labels get target ``1 / n_i`` (``tf_sampling.nn.label_set``).
        Keras 3 has no ragged targets, hence the padded form.
      allow_empty: bool, with ``padding_id``: a row of only padding gets loss
        0 (and no gradient) instead of an ``InvalidArgumentError`` (default
        False). The reduction still counts it, as Keras counts a row of
        sample weight 0.
    """

    #: The exact loss over all classes that evaluation reports.
    objective = full_loss.SOFTMAX
    #: The functional loss of training, called with the ``tf_sampling.nn`` arguments.
    sampled_loss_fn = staticmethod(sampled_losses.sampled_softmax_loss)

    def __init__(
        self,
        num_classes: int | None = None,
        num_sampled: int | None = None,
        num_true: int | None = None,
        sampler=None,
        remove_accidental_hits: bool | None = None,
        seed: int | None = None,
        layer: output_tags.OutputHead | None = None,
        reduction="sum_over_batch_size",
        name: str | None = None,
        dtype=None,
        padding_id: int | None = None,
        allow_empty: bool = False,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        # Validate with placeholders for what the layer will provide.
        check_sampling_options(
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
                check_sampling_options(num_classes, num_sampled, 1, None, unique)
        if remove_accidental_hits is not None:
            checks.check_bool(remove_accidental_hits, "remove_accidental_hits")
        padding_id, allow_empty = full_loss.check_padding_options(padding_id, allow_empty)
        if layer is not None and not isinstance(layer, output_tags.OutputHead):
            raise TypeError(
                "`layer` must be a SampledSoftmax, NCE or RankSampledSoftmax layer, got "
                f"{layer!r} of type {type(layer).__name__}."
            )
        self.num_classes = num_classes
        self.num_sampled = num_sampled
        self.num_true = num_true
        self.sampler = sampler
        self.remove_accidental_hits = remove_accidental_hits
        self.seed = seed
        self.padding_id = padding_id
        self.allow_empty = allow_empty
        self.layer = layer

    # ---------------------------------------------------------------- calls
    def call(self, y_true, y_pred):
        """Per-example loss.

        Args:
          y_true: int ``[*batch]`` or ``[*batch, num_true]`` class ids.
          y_pred: The output layer's output: hidden ``[*batch, dim]`` while
            training, logits/probabilities ``[*batch, num_classes]`` otherwise.

        Returns:
          tf.Tensor: float32 ``[*batch]``.
        """
        y_true, y_pred = self.inputs(y_true, y_pred)
        if self.layer is None and output_tags.is_untagged_build_placeholder(y_pred):
            # Only the output's shape and dtype matter in Keras' symbolic build.
            return tf.zeros(tf.shape(y_pred)[:-1], tf.float32)
        layer, kind = self._resolve(y_pred)
        num_true = self.num_true or layer.num_true
        found = output_tags.get_tag(y_pred)
        if (
            kind != output_tags.HIDDEN
            and found is not None
            and found.layer is layer
            and found.hidden is not None
        ):
            # Exact, from the layer's input and table in blocks: y_pred itself
            # is never read, so no [*batch, num_classes] tensor is needed.
            return full_loss.exact_from_table(
                found,
                y_true,
                num_true,
                self.objective_for(layer),
                self.padding_id,
                self.allow_empty,
            )
        labels = full_loss.flatten_labels(
            y_true,
            y_pred,
            num_true,
            layer.num_classes,
            padding_id=self.padding_id,
            allow_empty=self.allow_empty,
        )
        if kind == output_tags.HIDDEN:
            per_row = self._sampled_loss(
                layer, labels, full_loss.flatten_features(y_pred), num_true
            )
        else:
            # Dense logits (or probabilities) in hand: the exact loss from them,
            # with the padded labels as a label set when padding_id is set.
            if found is None and kind == output_tags.PROBABILITIES:
                logits = full_loss.probabilities_to_logits(y_pred, layer.objective)
            else:
                logits = full_loss.logits_of(y_pred)
            per_row = full_loss.full_cross_entropy(
                labels,
                full_loss.flatten_features(logits),
                num_true,
                layer.num_classes,
                self.objective_for(layer),
            )
        return full_loss.unflatten(tf.cast(per_row, tf.float32), y_pred)

    def objective_for(self, layer) -> str:
        """The exact loss of evaluation: the class's ``objective``, else the layer's."""
        return self.objective or layer.objective

    def _resolve(self, y_pred) -> tuple:
        """Returns ``(layer, kind)``: the output layer and what ``y_pred`` holds."""
        found = output_tags.get_tag(y_pred)
        layer = self.layer or (found.layer if found is not None else None)
        if layer is None:
            raise ValueError(
                f"{type(self).__name__} could not find its output layer: y_pred of shape "
                f"{getattr(y_pred, 'shape', None)} was not produced by a tf_sampling output "
                "layer. Make a SampledSoftmax/NCE/RankSampledSoftmax layer the model's output "
                "(with nothing after it), or pass layer=... to the loss."
            )
        if self.num_classes is not None and self.num_classes != layer.num_classes:
            raise ValueError(
                f"{type(self).__name__} has num_classes={self.num_classes} but layer "
                f"'{layer.name}' has num_classes={layer.num_classes}."
            )
        if found is not None:
            return layer, found.kind
        # An explicit layer and an untagged tensor: only the last dimension can
        # tell hidden activations from logits, and it must do so unambiguously.
        last, dim = y_pred.shape[-1], getattr(layer, "input_dim", None)
        if last is not None and last == layer.num_classes and last == dim:
            raise ValueError(
                f"{type(self).__name__}: y_pred of shape {y_pred.shape} carries no tag, and with "
                f"num_classes = dim = {last} it could be either the hidden activations or the "
                f"logits of layer '{layer.name}'. Pass the layer's own output (it is tagged)."
            )
        if last is not None and last == layer.num_classes:
            if layer.output_mode == output_tags.LOGITS:
                return layer, output_tags.LOGITS
            return layer, output_tags.PROBABILITIES
        if last is not None and last == dim:
            return layer, output_tags.HIDDEN
        raise ValueError(
            f"{type(self).__name__}: y_pred of shape {y_pred.shape} is neither the hidden "
            f"activations (dim={dim}) nor the logits (num_classes={layer.num_classes}) of "
            f"layer '{layer.name}'."
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
        check_sampling_options(
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

    def _extra_options(self, layer, options: dict) -> dict:
        """Keyword arguments of ``sampled_loss_fn`` beyond the shared ones (none here)."""
        return {}

    def _sampled_loss(self, layer, labels, inputs, num_true) -> tf.Tensor:
        options, sampler = self._options(layer, num_true)
        if xla.in_xla_context():
            # tf.random's sampler ops have no XLA kernels: the compilable
            # sampler of the same distribution draws instead.
            sampler = samplers_module.xla_defaults.compilable_twin(sampler)
        options.update(self._extra_options(layer, options))
        sampler_labels = labels
        if label_sets.is_label_set(labels) and isinstance(
            sampler, samplers_module.builtin.CandidateSampler
        ):
            # tf.random's samplers keep no counts and take no label set: the
            # padding gets class 0's expected count, which the loss never reads.
            sampler_labels = tf.where(
                label_sets.real_mask(labels), labels.labels, tf.zeros([], tf.int64)
            )
        options["sampled_values"] = sampler.sample(sampler_labels, num_true, options["num_sampled"])
        return self.sampled_loss_fn(labels=labels, inputs=inputs, **options)

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
            padding_id=self.padding_id,
            allow_empty=self.allow_empty,
        )
        return config


@keras.saving.register_keras_serializable(package="tf_sampling")
class SampledSoftmaxLoss(SampledLoss):
    """Sampled softmax in ``fit``, exact full-softmax cross-entropy in ``evaluate``.

    Pair it with a ``SampledSoftmax`` output layer as the model's output::

        model.compile("adam", loss=ts.losses.SampledSoftmaxLoss())

    Takes the ``SampledLoss`` arguments (all optional: the layer provides them).
    """


@keras.saving.register_keras_serializable(package="tf_sampling")
class FullSoftmaxLoss(SampledLoss):
    """The exact loss over every class in ``fit`` too, in bounded memory: no sampling.

    Trains with the loss the sampled losses estimate -- full softmax
    cross-entropy for ``SampledSoftmax``/``RankSampledSoftmax`` heads, the full
    sigmoid cross-entropy summed over classes for ``NCE`` heads -- computed in
    class blocks of the layer's ``chunk_size``
    (``tf_sampling.nn.full_softmax_cross_entropy``), so no ``[batch,
    num_classes]`` logits are held. The honest baseline for sampled training.
    Its weight gradients are dense (every class gets one), so every row of the
    table is updated every step. Takes the ``SampledLoss`` arguments; the
    sampling ones are ignored.
    """

    objective = None

    def _sampled_loss(self, layer, labels, inputs, num_true):
        found = output_tags.OutputTag(layer, output_tags.LOGITS, hidden=inputs)
        return full_loss.exact_from_table(found, labels, num_true, self.objective_for(layer))


@keras.saving.register_keras_serializable(package="tf_sampling")
class NCELoss(SampledLoss):
    """NCE in ``fit``, exact full sigmoid cross-entropy (summed over classes) in ``evaluate``.

    Pair it with an ``NCE`` output layer. Takes the ``SampledLoss`` arguments.
    """

    objective = full_loss.SIGMOID
    sampled_loss_fn = staticmethod(sampled_losses.nce_loss)


@keras.saving.register_keras_serializable(package="tf_sampling")
class RankSampledSoftmaxLoss(SampledLoss):
    """TAPAS in ``fit``, exact full-softmax cross-entropy in ``evaluate``.

    Pair it with a ``RankSampledSoftmax`` output layer, whose ``num_resampled``
    and (variable) ``resampling_temperature`` it uses.

    Args:
      num_resampled: Optional int; overrides the layer's (required with a
        layer that has none).
      resampling_temperature: Optional float > 0; overrides the layer's
        variable (required with a layer that has none).
      **kwargs: ``SampledLoss`` arguments.
    """

    sampled_loss_fn = staticmethod(rank_sampled_softmax_loss)

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

    def _extra_options(self, layer, options: dict) -> dict:
        num_resampled = self.num_resampled or getattr(layer, "num_resampled", None)
        temperature = self.resampling_temperature
        if temperature is None and getattr(layer, "resampling_temperature", None) is not None:
            temperature = layer.resampling_temperature.value
        if num_resampled is None or temperature is None:
            raise ValueError(
                "RankSampledSoftmaxLoss needs `num_resampled` and `resampling_temperature`: set "
                f"them on the loss, or use a RankSampledSoftmax layer (got '{layer.name}')."
            )
        check_resampling(num_resampled, options["num_sampled"], 1.0)
        return dict(num_resampled=num_resampled, resampling_temperature=temperature)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_resampled=self.num_resampled, resampling_temperature=self.resampling_temperature
        )
        return config
