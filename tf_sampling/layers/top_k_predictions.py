"""Exact top-k predictions and a top-k serving export, without ``[batch, num_classes]`` logits.

``model.predict`` on a model ending in an output layer returns the full
``[batch, num_classes]`` row: 40 GB for 1024 rows at 10^7 classes, when what
is wanted is the best ``k``. Here the head's table is scanned in class blocks
(``tf_sampling.nn.full_top_k``), keeping a running top-k:

* ``top_k_model(model, k)``: a model on the same inputs and weights whose
  ``predict`` returns ``{"ids": int32 [..., k], "scores": float32 [..., k]}``;
* ``export_top_k(model, path, k)``: a SavedModel whose ``serving_default``
  signature returns those two tensors. It holds plain TensorFlow ops only, so
  serving it needs neither this package nor its C++ op (``saved_model_cli
  run`` works on it).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._core import loss_args
from tf_sampling._core.full_top_k import full_top_k
from tf_sampling._keras import output_tags


class TopKPredictions(keras.layers.Layer):
    """The ``k`` best classes of an output layer's table for its input activations.

    Args:
      head: A ``SampledSoftmax``, ``NCE`` or ``RankSampledSoftmax`` layer (its
        weights are shared, not copied).
      k: int in ``[1, num_classes]``.
      chunk_size: Optional int, classes per block (default: the head's).

    Call arguments:
      inputs: float ``[batch, ..., dim]``, what the head takes.

    Returns:
      dict: ``"ids"`` int32 ``[batch, ..., k]`` and ``"scores"`` float32
      logits ``[batch, ..., k]``, best first; ties go to the lower class id.
    """

    def __init__(self, head, k: int, chunk_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(head, output_tags.OutputHead):
            raise TypeError(
                "`head` must be a SampledSoftmax, NCE or RankSampledSoftmax layer, got "
                f"{head!r} of type {type(head).__name__}."
            )
        self.head = head
        self.k = loss_args.check_top_k(k, head.num_classes)
        self.chunk_size = loss_args.check_chunk_size(chunk_size)

    def call(self, inputs):
        rows = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
        scores, ids = full_top_k(
            self.head.kernel,
            self.head.bias,
            rows,
            self.k,
            num_classes=self.head.num_classes,
            partition_strategy=self.head.partition_strategy,
            chunk_size=self.chunk_size or self.head.chunk_size,
        )
        shape = tf.concat([tf.shape(inputs)[:-1], [self.k]], 0)
        return {
            "ids": tf.reshape(tf.cast(ids, tf.int32), shape),
            "scores": tf.reshape(tf.cast(scores, tf.float32), shape),
        }

    def compute_output_spec(self, inputs):
        shape = (*inputs.shape[:-1], self.k)
        return {
            "ids": keras.KerasTensor(shape, dtype="int32"),
            "scores": keras.KerasTensor(shape, dtype="float32"),
        }


def _head_of(model: keras.Model, head):
    if head is not None:
        return head
    heads = [layer for layer in model.layers if isinstance(layer, output_tags.OutputHead)]
    if len(heads) != 1:
        raise ValueError(
            "`model` must hold exactly one SampledSoftmax/NCE/RankSampledSoftmax layer when "
            f"`head` is not given, got {len(heads)}: {[layer.name for layer in heads]}."
        )
    return heads[0]


def top_k_model(model: keras.Model, k: int, head=None, chunk_size: int | None = None):
    """A model on ``model``'s inputs and weights that predicts the ``k`` best classes.

    Args:
      model: A functional (or ``Sequential``) model ending in an output layer.
      k: int in ``[1, num_classes]``.
      head: Optional output layer of ``model`` (default: its only one).
      chunk_size: Optional int, classes per block (default: the head's).

    Returns:
      keras.Model: ``predict`` gives ``{"ids": int32 [..., k], "scores":
      float32 [..., k]}``, never the ``[..., num_classes]`` row.
    """
    head = _head_of(model, head)
    hidden = head.input
    return keras.Model(
        model.inputs, TopKPredictions(head, k, chunk_size, name="top_k")(hidden), name="top_k"
    )


def export_top_k(model: keras.Model, filepath: str, k: int, head=None, chunk_size=None) -> None:
    """Exports a SavedModel whose ``serving_default`` returns the ``k`` best classes.

    Args:
      model: A functional (or ``Sequential``) model ending in an output layer.
      filepath: Directory to write.
      k: int in ``[1, num_classes]``.
      head: Optional output layer of ``model`` (default: its only one).
      chunk_size: Optional int, classes per block (default: the head's).

    The signature takes the model's input and returns ``ids`` (int32) and
    ``scores`` (float32), both ``[..., k]``; it uses plain TensorFlow ops only.
    """
    predictor = top_k_model(model, k, head, chunk_size)
    spec = [
        tf.TensorSpec(t.shape, t.dtype, name=getattr(t, "name", None) or "inputs")
        for t in predictor.inputs
    ]
    archive = keras.export.ExportArchive()
    archive.track(predictor)
    archive.add_endpoint(
        name="serve",
        fn=lambda *args: predictor(list(args) if len(args) > 1 else args[0], training=False),
        input_signature=spec,
    )
    archive.write_out(filepath, verbose=False)
