"""``SampledOutputLayer``: the shared base of the sampled output layers.

The labels problem and how it is solved
---------------------------------------
Keras trains with ``y_pred = model(x, training=True)`` followed by
``loss(y_true, y_pred)``: the output layer never sees the labels, yet a sampled
loss needs them (to sample around the true classes and to look up their rows).
So the work is split:

* The **layer** owns the class weights ``[num_classes, dim]`` (optionally in
  ``num_shards`` shards), the biases, the sampler and the sampling options.
  With ``training=True`` it returns its input -- the hidden activations --
  unchanged; otherwise it returns the exact full logits (or probabilities)
  over all classes.
* The **loss** (``ts.losses.SampledSoftmaxLoss`` & co.) receives
  ``y_pred``. Every tensor the layer returns carries a tag naming the layer
  (see ``tf_sampling._keras.output_tags``), so the loss finds the class weights there: on hidden
  activations it computes the sampled loss with the layer's weights (the
  gradient tape of ``fit`` records it, so the weights train, sparsely); on
  logits it computes the exact full loss. Hence ``fit`` shows the sampled loss
  and ``evaluate`` the exact one, with no extra model inputs.

Weights are stored ``[num_classes, dim]`` (never a transposed Dense kernel) and
only ever gathered, so their gradients are ``tf.IndexedSlices``.
"""

from __future__ import annotations

import collections
import warnings

import keras
import tensorflow as tf

from tf_sampling import samplers as samplers_module
from tf_sampling._core import checks, loss_args
from tf_sampling._core.full_logits import full_logits
from tf_sampling._core.full_top_k import full_top_k
from tf_sampling._core.sharding import shard_class_ids
from tf_sampling._keras import full_loss, output_tags
from tf_sampling._keras.options import check_sampling_options

TopK = collections.namedtuple("TopK", ["ids", "scores"])
TopK.__doc__ = """The ``k`` best classes: ``ids`` int32 ``[..., k]``, ``scores`` ``[..., k]``."""

OUTPUTS = (output_tags.LOGITS, output_tags.PROBABILITIES)


class SampledOutputLayer(keras.layers.Layer, output_tags.OutputHead):
    """Base of ``SampledSoftmax``, ``NCE`` and ``RankSampledSoftmax``.

    Subclasses set ``objective`` (``"softmax"`` or ``"sigmoid"``: the full
    loss, and the activation of ``output="probabilities"``) and
    ``loss_class_name``; see ``SampledSoftmax`` for the arguments.
    """

    objective = full_loss.SOFTMAX
    #: ``remove_accidental_hits`` when None is passed (TensorFlow's defaults).
    default_remove_accidental_hits = True

    def __init__(
        self,
        num_classes: int,
        num_sampled: int,
        num_true: int = 1,
        sampler="log_uniform",
        remove_accidental_hits: bool | None = None,
        seed: int | None = None,
        output_mode: str = "logits",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        num_shards: int = 1,
        partition_strategy: str = "div",
        chunk_size: int | None = None,
        **kwargs,
    ):
        # Class weights are gathered in float32 and never autocast: under a
        # mixed policy, casting the whole [num_classes, dim] table every step
        # would defeat sampling. The loss is computed in float32.
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        num_classes = checks.check_int(num_classes, "num_classes", 2)
        self.sampler = samplers_module.get(sampler, num_classes=num_classes, seed=seed)
        unique = bool(getattr(self.sampler, "unique", True))
        self.num_classes, self.num_sampled, self.num_true, self.seed = check_sampling_options(
            num_classes, num_sampled, num_true, seed, unique
        )
        if remove_accidental_hits is None:
            remove_accidental_hits = self.default_remove_accidental_hits
        self.remove_accidental_hits = checks.check_bool(
            remove_accidental_hits, "remove_accidental_hits"
        )
        self.output_mode = checks.check_choice(output_mode, "output_mode", OUTPUTS)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.num_shards = checks.check_at_most(
            checks.check_int(num_shards, "num_shards", 1),
            "num_shards",
            self.num_classes,
            "num_classes: every shard holds a class",
        )
        self.partition_strategy = loss_args.check_partition_strategy(partition_strategy)
        self.chunk_size = loss_args.check_chunk_size(chunk_size)
        self.supports_masking = True
        self._warned_about_jit = False
        self.kernel_shards: list = []
        self.bias_shards: list = []
        self._warned_about_consumers = False

    @property
    def supports_jit(self) -> bool:
        """Whether Keras may compile the training step with XLA.

        True on a compilable sampler and on the built-in (``tf.random``) ones:
        TensorFlow's sampler ops have no XLA kernels, so in a compiled step
        the loss draws from their compilable twin instead (same distribution,
        other random numbers; ``tf_sampling.samplers.xla_defaults``). False on
        a sampler that cannot compile (the learned-unigram sampler on the C++
        op, custom objects): reading it then warns once, naming the fix, and
        Keras trains without XLA.
        """
        if samplers_module.xla_defaults.has_compilable_twin(self.sampler):
            return True
        if not getattr(self, "_warned_about_jit", True):
            self._warned_about_jit = True
            warnings.warn(
                samplers_module.xla_defaults.not_compilable_message(
                    self.sampler, f"{type(self).__name__} '{self.name}'"
                ),
                stacklevel=2,
            )
        return False

    @supports_jit.setter
    def supports_jit(self, value) -> None:
        # keras.layers.Layer.__init__ sets True; the sampler decides.
        del value

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        if self.built:
            return
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape [batch, ..., dim] with a known "
                f"dim; got input shape {input_shape}."
            )
        dim = int(input_shape[-1])
        self.input_dim = dim
        ids_per_shard = shard_class_ids(self.num_classes, self.num_shards, self.partition_strategy)
        full_kernel = None
        if self.num_shards > 1:
            # One draw of the whole [num_classes, dim] table, split into shards:
            # the initial values do not depend on num_shards.
            full_kernel = self.kernel_initializer(
                (self.num_classes, dim), dtype=self.variable_dtype
            )
            full_bias = self.bias_initializer((self.num_classes,), dtype=self.variable_dtype)
        for s, ids in enumerate(ids_per_shard):
            suffix = "" if self.num_shards == 1 else f"_{s}"
            kernel_init = self.kernel_initializer
            bias_init = self.bias_initializer
            if full_kernel is not None:
                kernel_init = _constant_initializer(tf.gather(full_kernel, ids))
                bias_init = _constant_initializer(tf.gather(full_bias, ids))
            self.kernel_shards.append(
                self.add_weight(
                    name=f"kernel{suffix}",
                    shape=(len(ids), dim),
                    initializer=kernel_init,
                    regularizer=self.kernel_regularizer,
                    autocast=False,
                )
            )
            if self.use_bias:
                self.bias_shards.append(
                    self.add_weight(
                        name=f"bias{suffix}",
                        shape=(len(ids),),
                        initializer=bias_init,
                        regularizer=self.bias_regularizer,
                        autocast=False,
                    )
                )
        if isinstance(self.sampler, keras.layers.Layer) and not self.sampler.built:
            self.sampler.build(None)
        self.built = True

    # --------------------------------------------------------------- tables
    @property
    def kernel(self):
        """The class weights: a ``[num_classes, dim]`` variable, or the list of shards."""
        return self.kernel_shards[0] if self.num_shards == 1 else list(self.kernel_shards)

    @property
    def bias(self):
        """The class biases: a ``[num_classes]`` variable (or list of shards); zeros without bias."""
        if not self.use_bias:
            zeros = [tf.zeros([int(k.shape[0])], tf.float32) for k in self.kernel_shards]
            return zeros[0] if self.num_shards == 1 else zeros
        return self.bias_shards[0] if self.num_shards == 1 else list(self.bias_shards)

    # ----------------------------------------------------------------- call
    def call(self, inputs, training=None):
        """Hidden activations when training, full logits/probabilities otherwise.

        Args:
          inputs: float ``[batch, ..., dim]`` hidden activations.
          training: bool. True inside ``fit``: the inputs are returned as they
            are (tagged for the loss). False/None: exact full outputs.

        Returns:
          tf.Tensor: ``[batch, ..., dim]`` (training) or float32
          ``[batch, ..., num_classes]`` logits or probabilities.
        """
        if training:
            self._check_nothing_consumes_hidden()
            self._warn_about_dense_regularizers()
            return output_tags.tag(inputs, self, output_tags.HIDDEN)
        # The tag carries the inputs: losses and metrics compute exact values
        # from them and the table in blocks, so a compiled evaluate step never
        # needs (and prunes) these full outputs.
        logits = self.logits(inputs)
        if self.output_mode == output_tags.PROBABILITIES:
            activation = tf.nn.softmax if self.objective == full_loss.SOFTMAX else tf.sigmoid
            return output_tags.tag(
                activation(logits), self, output_tags.PROBABILITIES, logits=logits, hidden=inputs
            )
        return output_tags.tag(logits, self, output_tags.LOGITS, hidden=inputs)

    def _check_nothing_consumes_hidden(self):
        # A layer after the head gets [..., dim] activations while training,
        # where it was built for [..., num_classes], and fails deep inside with
        # a shape error. Keras records every functional use of this layer's
        # output as an outbound node: name them before that happens. A warning,
        # not an error: the consumer may belong to another model (e.g. a
        # serving model built on the same head) and never run in this one.
        consumers = sorted(
            {
                getattr(node.operation, "name", "?")
                for node in getattr(self, "_outbound_nodes", ())
                if node.operation is not None and not isinstance(node.operation, keras.Model)
            }
        )
        if consumers and not self._warned_about_consumers:
            self._warned_about_consumers = True
            warnings.warn(
                f"{type(self).__name__} '{self.name}' returns its input, the hidden "
                f"activations [..., {getattr(self, 'input_dim', 'dim')}], while training (its "
                f"loss samples from them), but layer(s) {consumers} take its output. In the "
                "model you train, make it the output with nothing after it; apply any "
                "post-processing to the logits of model.predict instead.",
                stacklevel=2,
            )

    def _warn_about_dense_regularizers(self):
        # A Keras weight regularizer is a function of the whole table: its
        # gradient has a row for every class, so the sampled step's sparse
        # update (and a lazy optimizer's O(touched rows) cost) is lost. Say so
        # once, at the first training call, with the sparse alternatives.
        if getattr(self, "_warned_about_regularizers", False):
            return
        dense = [
            f"{name}={type(reg).__name__}"
            for name, reg in (
                ("kernel_regularizer", self.kernel_regularizer),
                ("bias_regularizer", self.bias_regularizer if self.use_bias else None),
            )
            if reg is not None
        ]
        if not dense:
            return
        self._warned_about_regularizers = True
        warnings.warn(
            f"{type(self).__name__} '{self.name}' has {', '.join(dense)}: Keras applies it to "
            f"the whole [{self.num_classes}, ...] table every step, so its gradient is dense and "
            "every class row is updated each step (O(num_classes), whatever the optimizer). "
            "For a penalty on the rows a step touches only, use decoupled weight decay "
            "(tf_sampling.optimizers.LazyAdamW(weight_decay=...) or a lazy optimizer's "
            "weight_decay), or tf_sampling.optimizers.touched_rows_penalty in a custom loss.",
            stacklevel=2,
        )

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.num_classes)

    def compute_mask(self, inputs, mask=None):
        return mask

    def logits(self, inputs) -> tf.Tensor:
        """Exact logits over every class, ``inputs @ kernel^T + bias`` in class order.

        Args:
          inputs: float ``[batch, ..., dim]`` hidden activations.

        Returns:
          tf.Tensor: float32 ``[batch, ..., num_classes]``.
        """
        inputs = tf.convert_to_tensor(inputs)
        if not self.built:
            self.build(inputs.shape)
        return full_logits(self.kernel, self.bias, inputs, self.partition_strategy)

    def top_k(self, inputs, k: int = 5) -> TopK:
        """The ``k`` highest-scoring classes for hidden activations.

        Args:
          inputs: float ``[batch, ..., dim]`` hidden activations.
          k: int, number of classes to return.

        Returns:
          TopK: ``ids`` int32 ``[batch, ..., k]`` and float32 logits ``scores``
          ``[batch, ..., k]``, best first (ties to the lower id). Computed in
          class blocks of ``chunk_size``: the full logits are never held.
        """
        inputs = tf.convert_to_tensor(inputs)
        if not self.built:
            self.build(inputs.shape)
        k = loss_args.check_top_k(k, self.num_classes)
        rows = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
        scores, ids = full_top_k(
            self.kernel,
            self.bias,
            rows,
            k,
            num_classes=self.num_classes,
            partition_strategy=self.partition_strategy,
            chunk_size=self.chunk_size,
        )
        shape = tf.concat([tf.shape(inputs)[:-1], [k]], 0)
        return TopK(
            ids=tf.reshape(tf.cast(ids, tf.int32), shape),
            scores=tf.reshape(tf.cast(scores, tf.float32), shape),
        )

    def probabilities_of(self) -> str | None:
        """None when the layer outputs logits, else the activation of its probabilities."""
        return None if self.output_mode == output_tags.LOGITS else self.objective

    # --------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            num_classes=self.num_classes,
            num_sampled=self.num_sampled,
            num_true=self.num_true,
            sampler=samplers_module.serialize(self.sampler),
            remove_accidental_hits=self.remove_accidental_hits,
            seed=self.seed,
            output_mode=self.output_mode,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            num_shards=self.num_shards,
            partition_strategy=self.partition_strategy,
            chunk_size=self.chunk_size,
        )
        return config


def _constant_initializer(value: tf.Tensor):
    def initializer(shape, dtype=None):
        return tf.cast(tf.reshape(value, shape), dtype or value.dtype)

    return initializer


def top_k(outputs, k: int = 5) -> TopK:
    """The ``k`` best classes of full logits or probabilities (e.g. ``model.predict``'s output).

    Args:
      outputs: float ``[batch, ..., num_classes]`` logits or probabilities.
      k: int >= 1.

    Returns:
      TopK: ``ids`` int32 ``[batch, ..., k]`` and ``scores`` ``[batch, ..., k]``
      (the input values), best first.
    """
    k = checks.check_int(k, "k", 1)
    values, indices = tf.math.top_k(tf.convert_to_tensor(outputs), k=k)
    return TopK(ids=indices, scores=values)
