"""How ``AdaptiveSoftmaxLoss`` finds the parameters of an ``AdaptiveSoftmax`` layer.

The same contract as the sampled heads' (``output_tags``): the layer tags every
tensor it returns, and the loss reads the layer off ``y_pred``.

* While training the layer returns its input, the hidden activations, tagged
  ``"hidden"``; the loss computes the adaptive negative log-likelihood from
  them (the head, and each tail cluster only for the rows whose target lies
  in it).
* Otherwise the layer returns the exact log-probabilities ``[..., num_classes]``
  tagged ``"logits"`` (log-probabilities are logits whose softmax is
  themselves) or probabilities tagged ``"probabilities"``, and puts its input
  in the tag's ``cache`` under :data:`INPUTS`. The loss computes from that
  input, so ``evaluate`` costs what training does and, in a compiled step,
  the unused ``[..., num_classes]`` output is pruned. The input is kept out
  of the tag's ``hidden`` field on purpose: the exact metrics
  (``Perplexity``, ``TopKAccuracy``) read ``hidden`` as the input of a class
  table ``[num_classes, dim]``, which this head does not have, and without it
  they read the log-probabilities as logits, which is exact.
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core.adaptive_softmax import adaptive_softmax_loss
from tf_sampling._keras import full_loss, output_tags

#: Key of the layer's input in the ``cache`` of its tagged log-probabilities.
INPUTS = "adaptive_softmax_inputs"


class AdaptiveHead:
    """Marker base of adaptive-softmax output layers.

    What the loss reads from such a layer: ``num_classes`` (int), ``cutoffs``
    (tuple of ints, empty for none), ``head_kernel`` ``[c_0 + m, dim]``,
    ``head_bias`` (``[c_0 + m]`` or None), ``tail_projections`` (list of
    ``[dim, p_i]``), ``tail_kernels`` (list of ``[size_i, p_i]``) and
    ``tail_biases`` (list of ``[size_i]``, or None). ``num_true`` is 1 (one
    target per example), as the exact metrics read it from an output layer.
    """

    num_true = 1


def parameters(layer: AdaptiveHead) -> tuple:
    """The five parameter arguments of the ``tf_sampling.nn`` adaptive functions."""
    return (
        layer.head_kernel,
        layer.head_bias,
        list(layer.tail_projections),
        list(layer.tail_kernels),
        None if layer.tail_biases is None else list(layer.tail_biases),
    )


def tag_outputs(outputs: tf.Tensor, layer: AdaptiveHead, kind: str, inputs, logits=None):
    """``outputs`` tagged as the layer's ``kind``, its ``inputs`` kept in the cache."""
    tagged = output_tags.tag(outputs, layer, kind, logits=logits)
    output_tags.get_tag(tagged).cache[INPUTS] = inputs
    return tagged


def resolve(y_pred, loss_name: str) -> tuple:
    """``(layer, inputs)``: the adaptive head that produced ``y_pred`` and its input.

    Raises:
      ValueError: ``y_pred`` was not produced by an adaptive-softmax layer.
    """
    found = output_tags.get_tag(y_pred)
    layer = found.layer if found is not None else None
    if not isinstance(layer, AdaptiveHead):
        raise ValueError(
            f"{loss_name} could not find its output layer: y_pred of shape "
            f"{getattr(y_pred, 'shape', None)} was not produced by an AdaptiveSoftmax layer. "
            "Make an AdaptiveSoftmax layer the model's output, with nothing after it."
        )
    if found.kind == output_tags.HIDDEN:
        return layer, y_pred
    return layer, found.cache[INPUTS]


def negative_log_likelihood(
    layer: AdaptiveHead,
    y_true,
    inputs,
    padding_id: int | None = None,
    allow_empty: bool = False,
) -> tf.Tensor:
    """float32 ``[*batch]``: ``-log p(y_true)`` for inputs ``[*batch, dim]``.

    Args:
      layer: the adaptive head.
      y_true: int ``[*batch]`` or ``[*batch, 1]`` class ids; with
        ``padding_id``, ``[*batch, max_true]`` padded label sets (``[*batch]``
        is one slot per example).
      inputs: float ``[*batch, dim]``, the head's input.
      padding_id: Optional int marking the unused slots: example ``i``'s
        ``n_i`` real labels share the target mass ``1 / n_i``.
      allow_empty: With ``padding_id``: a row of only padding gets loss 0
        (no gradient) instead of an ``InvalidArgumentError``.

    Raises:
      ValueError: ``y_true``'s shape does not fit, or (with ``padding_id``)
        its last dimension is unknown, or ``padding_id`` is a class id.
    """
    output_shape = inputs.shape[:-1] + [layer.num_classes]
    num_true = 1 if padding_id is None else full_loss.padded_width(y_true, inputs)
    labels = full_loss.flatten_labels(
        y_true, inputs, num_true, layer.num_classes, output_shape, padding_id, allow_empty
    )
    per_row = adaptive_softmax_loss(
        *parameters(layer),
        labels=labels,
        inputs=full_loss.flatten_features(inputs),
        cutoffs=list(layer.cutoffs) or None,
        num_classes=layer.num_classes,
    )
    return full_loss.unflatten(tf.cast(per_row, tf.float32), inputs)
