"""``AdaptiveSoftmax``: an exact, normalized softmax output layer at a fraction of its cost.

Adaptive softmax (Grave et al. 2017, arXiv 1609.04309; PyTorch's
``AdaptiveLogSoftmaxWithLoss``): frequent classes get a full-width head, rare
ones smaller projected clusters. Unlike the sampled heads it trains on the
exact likelihood. The layer owns the parameters; its loss
(``ts.losses.AdaptiveSoftmaxLoss``) finds them through the tag on the
layer's output (``tf_sampling._keras.adaptive_head``), as the sampled heads'
losses do.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core import adaptive_layout, checks, loss_args
from tf_sampling._core.adaptive_softmax import adaptive_log_softmax, adaptive_top_k
from tf_sampling._keras import adaptive_head, output_tags
from tf_sampling.layers.base import TopK

LOG_PROBS = "log_probs"
OUTPUT_MODES = (LOG_PROBS, output_tags.PROBABILITIES)


@keras.saving.register_keras_serializable(package="tf_sampling")
class AdaptiveSoftmax(keras.layers.Layer, adaptive_head.AdaptiveHead):
    """Adaptive-softmax output layer over ``num_classes`` classes.

    Class ids must be sorted by decreasing frequency (class 0 the most
    frequent). ``cutoffs`` split them into a head shortlist ``[0, c_0)`` and
    tail clusters ``[c_0, c_1), ..., [c_{m-1}, num_classes)``; the head scores
    the shortlist and one logit per cluster, tail cluster ``i`` projects the
    input to ``floor(dim / div_value**(i + 1))`` units and scores its classes
    from them. ``AdaptiveSoftmax.from_counts(counts)`` picks the cutoffs from
    class frequencies (see ``tf_sampling.nn.adaptive_softmax_cutoffs``)::

        head = ts.layers.AdaptiveSoftmax(44_000, cutoffs=[2000, 10000])
        model = keras.Model(inputs, head(hidden))
        model.compile("adam", loss=ts.losses.AdaptiveSoftmaxLoss())
        model.fit(x, y)          # y: int class ids [batch] or [batch, time]
        # several labels per example: y padded [batch, max_true] with -1 and
        # ts.losses.AdaptiveSoftmaxLoss(padding_id=-1): -(1/n_i) sum_k log p(y_ik)
        log_probs = model.predict(x)                      # [..., num_classes]
        best = ts.layers.adaptive_top_k_model(model, 5).predict(x)  # large vocab

    With ``training=True`` (inside ``fit``) the layer returns its input and
    the loss computes the exact negative log-likelihood from it, evaluating
    each tail cluster only for the examples whose target lies in it. Otherwise
    it returns the exact log-probabilities ``[..., num_classes]`` (or
    probabilities), float32 under every dtype policy; the loss of
    ``evaluate`` is computed from the layer's input, not from them.

    Args:
      num_classes: int >= 2, number of classes.
      cutoffs: None (a single cluster: the plain full softmax) or increasing
        ints in ``[1, num_classes - 1]``.
      div_value: float > 0, the projection shrink per cluster.
      use_bias: bool, biases on the head's and the tail clusters' logits
        (PyTorch's layer has none by default).
      output_mode: ``"log_probs"`` (default) or ``"probabilities"``: what
        evaluation and inference return.
      kernel_initializer: Initializer of every weight matrix.
      bias_initializer: Initializer of the biases.
      kernel_regularizer: Optional regularizer of every weight matrix.
      bias_regularizer: Optional regularizer of the biases.
      chunk_size: Optional int, classes per block of ``top_k`` over a large
        cluster (default: chosen from the shapes).
      **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
      ``[batch, ..., dim]``.

    Output shape:
      training: ``[batch, ..., dim]`` (the input); otherwise ``[batch, ...,
      num_classes]``.
    """

    def __init__(
        self,
        num_classes: int,
        cutoffs=None,
        div_value: float = 4.0,
        use_bias: bool = True,
        output_mode: str = LOG_PROBS,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        chunk_size: int | None = None,
        **kwargs,
    ):
        # Parameters stay float32 and the loss is computed in float32 under a
        # mixed policy (the core casts the inputs).
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        self.num_classes = checks.check_int(num_classes, "num_classes", 2)
        self.cutoffs = adaptive_layout.check_cutoffs(cutoffs, self.num_classes)
        self.div_value = adaptive_layout.check_div_value(div_value)
        self.use_bias = checks.check_bool(use_bias, "use_bias")
        self.output_mode = checks.check_choice(output_mode, "output_mode", OUTPUT_MODES)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.chunk_size = loss_args.check_chunk_size(chunk_size)
        self.supports_masking = True
        # Plain TensorFlow ops only; under XLA the loss masks instead of gathering.
        self.supports_jit = True
        self.head_kernel = self.head_bias = None
        self.tail_projections: list = []
        self.tail_kernels: list = []
        self.tail_biases: list | None = [] if self.use_bias else None

    @classmethod
    def from_counts(cls, counts, mass=adaptive_layout.DEFAULT_MASS, **kwargs):
        """A layer whose cutoffs follow class frequencies.

        Args:
          counts: ``num_classes`` non-negative counts in class-id order,
            non-increasing (class 0 the most frequent).
          mass: increasing cumulative-frequency fractions in ``(0, 1)``; the
            cutoffs are where the most frequent classes reach each (see
            ``tf_sampling.nn.adaptive_softmax_cutoffs``).
          **kwargs: the other ``AdaptiveSoftmax`` arguments.

        Returns:
          AdaptiveSoftmax: with ``num_classes = len(counts)``.
        """
        cutoffs = adaptive_layout.cutoffs_from_counts(counts, mass)
        return cls(num_classes=int(np.asarray(counts).shape[0]), cutoffs=cutoffs, **kwargs)

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        if self.built:
            return
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "AdaptiveSoftmax expects inputs of shape [batch, ..., dim] with a known dim; "
                f"got input shape {input_shape}."
            )
        dim = int(input_shape[-1])
        self.input_dim = dim
        bounds = adaptive_layout.cluster_bounds(self.cutoffs, self.num_classes)
        widths = adaptive_layout.projection_sizes(dim, len(bounds), self.div_value)
        rows = adaptive_layout.head_size(self.cutoffs, self.num_classes)
        self.head_kernel = self._kernel("head_kernel", (rows, dim))
        if self.use_bias:
            self.head_bias = self._bias("head_bias", rows)
        for i, ((start, stop), width) in enumerate(zip(bounds, widths, strict=True)):
            self.tail_projections.append(self._kernel(f"tail_projection_{i}", (dim, width)))
            self.tail_kernels.append(self._kernel(f"tail_kernel_{i}", (stop - start, width)))
            if self.use_bias:
                self.tail_biases.append(self._bias(f"tail_bias_{i}", stop - start))
        self.built = True

    def _kernel(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            autocast=False,
        )

    def _bias(self, name, size):
        return self.add_weight(
            name=name,
            shape=(size,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            autocast=False,
        )

    # ----------------------------------------------------------------- call
    def call(self, inputs, training=None):
        """Hidden activations when training, exact log-probabilities otherwise.

        Args:
          inputs: float ``[batch, ..., dim]`` hidden activations.
          training: bool. True inside ``fit``: the inputs are returned as they
            are (tagged for the loss). False/None: exact outputs.

        Returns:
          tf.Tensor: ``[batch, ..., dim]`` (training) or float32
          ``[batch, ..., num_classes]`` log-probabilities or probabilities.
        """
        if training:
            return output_tags.tag(inputs, self, output_tags.HIDDEN)
        log_probs = self.log_prob(inputs)
        if self.output_mode == output_tags.PROBABILITIES:
            return adaptive_head.tag_outputs(
                tf.exp(log_probs), self, output_tags.PROBABILITIES, inputs, logits=log_probs
            )
        return adaptive_head.tag_outputs(log_probs, self, output_tags.LOGITS, inputs)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.num_classes)

    def compute_mask(self, inputs, mask=None):
        return mask

    def _rows(self, inputs) -> tuple:
        inputs = tf.convert_to_tensor(inputs)
        if not self.built:
            self.build(inputs.shape)
        return inputs, tf.reshape(inputs, [-1, self.input_dim])

    def log_prob(self, inputs) -> tf.Tensor:
        """Exact log-probability of every class.

        Args:
          inputs: float ``[batch, ..., dim]`` hidden activations.

        Returns:
          tf.Tensor: float32 ``[batch, ..., num_classes]``; ``exp`` sums to 1.
        """
        inputs, rows = self._rows(inputs)
        out = adaptive_log_softmax(
            *adaptive_head.parameters(self),
            inputs=rows,
            cutoffs=list(self.cutoffs) or None,
            num_classes=self.num_classes,
        )
        shape = tf.concat([tf.shape(inputs)[:-1], [self.num_classes]], 0)
        out = tf.reshape(tf.cast(out, tf.float32), shape)
        out.set_shape(inputs.shape[:-1].concatenate([self.num_classes]))
        return out

    def top_k(self, inputs, k: int = 5) -> TopK:
        """The ``k`` most likely classes, without ``[batch, ..., num_classes]``.

        Args:
          inputs: float ``[batch, ..., dim]`` hidden activations.
          k: int in ``[1, num_classes]``.

        Returns:
          TopK: ``ids`` int32 ``[batch, ..., k]`` and float32 log-probabilities
          ``scores`` ``[batch, ..., k]``, best first (ties to the lower id).
        """
        inputs, rows = self._rows(inputs)
        k = loss_args.check_top_k(k, self.num_classes)
        scores, ids = adaptive_top_k(
            *adaptive_head.parameters(self),
            inputs=rows,
            k=k,
            cutoffs=list(self.cutoffs) or None,
            num_classes=self.num_classes,
            chunk_size=self.chunk_size,
        )
        shape = tf.concat([tf.shape(inputs)[:-1], [k]], 0)
        return TopK(
            ids=tf.reshape(tf.cast(ids, tf.int32), shape),
            scores=tf.reshape(tf.cast(scores, tf.float32), shape),
        )

    # --------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            num_classes=self.num_classes,
            cutoffs=list(self.cutoffs) or None,
            div_value=self.div_value,
            use_bias=self.use_bias,
            output_mode=self.output_mode,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            chunk_size=self.chunk_size,
        )
        return config


class AdaptiveTopK(keras.layers.Layer):
    """The ``k`` most likely classes of an ``AdaptiveSoftmax`` head for its input.

    Args:
      head: An ``AdaptiveSoftmax`` layer (its weights are shared, not copied).
      k: int in ``[1, num_classes]``.

    Call arguments:
      inputs: float ``[batch, ..., dim]``, what the head takes.

    Returns:
      dict: ``"ids"`` int32 ``[batch, ..., k]`` and ``"scores"`` float32
      log-probabilities ``[batch, ..., k]``, best first; ties go to the lower id.
    """

    def __init__(self, head: AdaptiveSoftmax, k: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(head, AdaptiveSoftmax):
            raise TypeError(
                f"`head` must be an AdaptiveSoftmax layer, got {head!r} of type "
                f"{type(head).__name__}."
            )
        self.head = head
        self.k = loss_args.check_top_k(k, head.num_classes)
        # A mask (padding) is accepted and not passed on: every position is ranked.
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        best = self.head.top_k(inputs, self.k)
        return {"ids": best.ids, "scores": best.scores}

    def compute_output_spec(self, inputs):
        shape = (*inputs.shape[:-1], self.k)
        return {
            "ids": keras.KerasTensor(shape, dtype="int32"),
            "scores": keras.KerasTensor(shape, dtype="float32"),
        }


def adaptive_top_k_model(model: keras.Model, k: int, head: AdaptiveSoftmax | None = None):
    """A model on ``model``'s inputs and weights that predicts the ``k`` most likely classes.

    Its ``predict`` returns ``{"ids": int32 [..., k], "scores": float32
    [..., k]}`` (log-probabilities), never the ``[..., num_classes]`` row;
    ``adaptive_top_k_model(model, k).export(path)`` writes a SavedModel that
    serves them with plain TensorFlow ops (no ``tf_sampling`` needed).

    Args:
      model: A functional (or ``Sequential``) model holding an
        ``AdaptiveSoftmax`` layer.
      k: int in ``[1, num_classes]``.
      head: Optional ``AdaptiveSoftmax`` layer of ``model`` (default: its only one).

    Returns:
      keras.Model.
    """
    if head is None:
        heads = [layer for layer in model.layers if isinstance(layer, AdaptiveSoftmax)]
        if len(heads) != 1:
            raise ValueError(
                "`model` must hold exactly one AdaptiveSoftmax layer when `head` is not given, "
                f"got {len(heads)}: {[layer.name for layer in heads]}."
            )
        head = heads[0]
    return keras.Model(model.inputs, AdaptiveTopK(head, k, name="top_k")(head.input), name="top_k")
