"""How the output layers mark the tensors they return.

Keras computes ``y_pred = model(x, training=...)`` and then ``loss(y_true, y_pred)``:
the loss never sees the model. So each of our output layers attaches an
``OutputTag`` (the layer and what the tensor holds) to the tensor it returns,
as a Python attribute -- the same mechanism Keras uses for ``_keras_mask``. The
losses and metrics read the tag to find the layer's class weights (training)
or to know whether they got logits or probabilities (evaluation). Nothing
about the tag is saved: a reloaded model's layer tags its outputs again, so a
reloaded loss finds it the same way.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

HIDDEN = "hidden"
LOGITS = "logits"
PROBABILITIES = "probabilities"
KINDS = (HIDDEN, LOGITS, PROBABILITIES)

_ATTRIBUTE = "_tf_sampling_output"


class OutputHead:
    """Marker base of the output layers the losses and metrics work with.

    ``tf_sampling.layers.SampledOutputLayer`` derives from it; the losses test
    ``isinstance(layer, OutputHead)`` instead of importing the layers. What a
    loss reads from a head: ``num_classes``, ``num_sampled``, ``num_true``,
    ``sampler``, ``remove_accidental_hits``, ``partition_strategy``, ``kernel``,
    ``bias``, ``objective`` (``"softmax"`` or ``"sigmoid"``), ``output_mode``,
    ``input_dim`` once built, and for TAPAS ``num_resampled`` and the
    ``resampling_temperature`` variable.
    """


class OutputTag:
    """What an output layer returned.

    Attributes:
      layer: The output layer that produced the tensor. Held by weak
        reference: the tag lives on graph tensors that Keras' traced functions
        keep, and a strong reference from there would keep the layer and its
        class table alive after the model is gone.
      kind: ``"hidden"`` (training: the input activations, passed through),
        ``"logits"`` or ``"probabilities"`` (evaluation and inference).
      logits: For ``"probabilities"``, the logits they were computed from (so
        losses and metrics need not take the log of a rounded probability);
        None otherwise.
      hidden: For ``"logits"``/``"probabilities"``, the layer's input
        activations: the losses and metrics compute exact values from them and
        the layer's class table in blocks, never reading the full
        ``[..., num_classes]`` output (in a compiled ``evaluate`` step the
        unused full logits are then pruned from the graph).
      cache: Values computed from this output once and shared by the loss
        and the metrics of one step (e.g. the exact cross-entropy).
    """

    __slots__ = ("_layer", "kind", "logits", "hidden", "cache")

    def __init__(self, layer, kind: str, logits=None, hidden=None):
        self._layer = weakref.ref(layer)
        self.kind = kind
        self.logits = logits
        self.hidden = hidden
        self.cache: dict = {}

    @property
    def layer(self):
        found = self._layer()
        if found is None:
            raise ValueError(
                "The output layer that produced this tensor no longer exists; call the "
                "model again to get outputs of a live layer."
            )
        return found


def tag(
    tensor: tf.Tensor,
    layer,
    kind: str,
    logits: tf.Tensor | None = None,
    hidden: tf.Tensor | None = None,
) -> tf.Tensor:
    """Returns a new tensor equal to ``tensor`` carrying an ``OutputTag``.

    Args:
      tensor: The layer's output.
      layer: The layer.
      kind: One of ``KINDS``.
      logits: The logits behind ``"probabilities"``.
      hidden: The input activations behind ``"logits"``/``"probabilities"``.

    Returns:
      tf.Tensor: ``tf.identity(tensor)`` with the tag attached (a new tensor, so
      the layer's input is never marked).
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
    out = tf.identity(tensor)
    setattr(out, _ATTRIBUTE, OutputTag(layer, kind, logits, hidden))
    return out


def get_tag(tensor) -> OutputTag | None:
    """Returns the ``OutputTag`` of ``tensor``, or None when it has none."""
    return getattr(tensor, _ATTRIBUTE, None)


def is_untagged_build_placeholder(tensor) -> bool:
    """True for the untagged placeholders Keras builds compiled losses and metrics on.

    Under a ``tf.distribute`` strategy, ``Trainer._symbolic_build`` first calls
    the compiled loss and metrics on placeholders no layer produced (and may
    average the labels into floats): only shapes and dtypes matter there, so
    losses and metrics return a placeholder value instead of looking for a
    layer.
    """
    return get_tag(tensor) is None and (
        getattr(getattr(tensor, "op", None), "type", None) == "Placeholder"
    )
