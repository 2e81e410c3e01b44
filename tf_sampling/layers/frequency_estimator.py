"""``StreamingFrequencyEstimator``: Yi et al.'s streaming estimate of how often each id arrives.

The arrays ``A`` (last step seen), ``B`` (estimated gap) and the step counter
are non-trainable variables, so they are saved by ``tf.train.Checkpoint``,
``.keras`` files and SavedModels like any weight. The update rule and the
hashes are in ``tf_sampling._core.frequency_estimation``.

Under a synchronous ``tf.distribute`` strategy (``MirroredStrategy``,
``MultiWorkerMirroredStrategy``), an update called in a replica context first
gathers every replica's ids, so each replica applies the update of the global
batch, identically; the variables take the first replica's values
(``aggregation="only_first_replica"``), which all replicas agree on. (Tested
with ``MirroredStrategy``; the multi-worker strategy takes the same path.)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._core import frequency_estimation as fe

__all__ = ["StreamingFrequencyEstimator"]

_ID_DTYPES = ("int64", "int32", "string")


@keras.saving.register_keras_serializable(package="tf_sampling")
class StreamingFrequencyEstimator(keras.layers.Layer):
    """Estimated arrivals per step of candidate ids (Yi et al., RecSys 2019), as Keras state.

    ``layer(ids, training=True)`` first counts the batch ``ids [N]`` as step
    ``t + 1`` of the stream, then returns their estimates ``[N]``;
    ``layer(ids)`` (inference) only reads. ``update(ids)`` and
    ``probability(ids)`` do each half alone. The estimate of ``y`` is the
    expected number of times ``y`` arrives per step (``1 / gap``), the
    quantity the logQ correction of an in-batch softmax subtracts (in log).

    Duplicates of an id in one batch count as that many arrivals at the same
    step, with the same result in any order (the paper's sequential rule; see
    ``tf_sampling._core.frequency_estimation``).

    Args:
      num_buckets: ``H``, entries of each hash function's arrays.
      num_hashes: number of hash functions (arrays ``A_k``, ``B_k``); the
        estimate takes the largest gap over them.
      learning_rate: ``alpha`` in (0, 1].
      id_dtype: ``"int64"``, ``"int32"`` or ``"string"``: the ids' dtype
        (integers are hashed multiplicatively, strings by fingerprint first).
      bias_correction: divide each gap by the weight its exponential average
        has given to observations so far (a ``weight`` array beside ``B``), so
        that a bucket's first arrivals are not pulled toward the zero start;
        ``False`` reads ``1 / B`` exactly as the paper. ``A`` and ``B`` follow
        the paper either way.
    """

    def __init__(
        self,
        num_buckets: int = 1 << 20,
        num_hashes: int = 2,
        learning_rate: float = 0.01,
        id_dtype: str = "int64",
        bias_correction: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_buckets, self.num_hashes, self.learning_rate = fe.check_estimator_options(
            num_buckets, num_hashes, learning_rate
        )
        if id_dtype not in _ID_DTYPES:
            raise ValueError(f"`id_dtype` must be one of {_ID_DTYPES}, got {id_dtype!r}.")
        self.id_dtype = id_dtype
        if not isinstance(bias_correction, bool):
            raise TypeError(f"`bias_correction` must be a bool, got {bias_correction!r}.")
        self.bias_correction = bias_correction
        size = self.num_buckets * self.num_hashes
        self.last_step = self.add_weight(
            shape=(size,),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="last_step",
        )
        self.gap = self.add_weight(
            shape=(size,),
            initializer="zeros",
            dtype="float32",
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
            name="gap",
        )
        self.weight = None
        if bias_correction:
            self.weight = self.add_weight(
                shape=(size,), initializer="zeros", dtype="float32", trainable=False,
                autocast=False, aggregation="only_first_replica", name="weight",
            )  # fmt: skip
        self.step = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="step",
        )
        self.built = True

    def _keys(self, ids) -> tf.Tensor:
        ids = tf.convert_to_tensor(ids)
        if (ids.dtype == tf.string) != (self.id_dtype == "string"):
            raise TypeError(
                f"`ids` must have dtype {self.id_dtype} (the layer's id_dtype), got "
                f"{ids.dtype.name}."
            )
        return fe.id_keys(ids)

    def _buckets(self, keys: tf.Tensor) -> tf.Tensor:
        return fe.hash_keys(keys, self.num_hashes, self.num_buckets)  # [num_hashes, N]

    def update(self, ids) -> tf.Tensor:
        """Counts ``ids`` (any shape) as the next step of the stream; returns the new step.

        In a replica context of a strategy with several replicas, the ids of
        all replicas are gathered first: the update is the global batch's.
        """
        return self._update(self._keys(ids))

    def _update(self, keys: tf.Tensor, buckets: tf.Tensor | None = None) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            keys = context.all_gather(keys, axis=0)
            buckets = None  # the local buckets are not the global batch's
        if buckets is None:
            buckets = self._buckets(keys)
        buckets = tf.reshape(buckets, [-1])
        step = self.step.value + 1
        weight = None if self.weight is None else self.weight.value
        new_last, new_gap, new_weight = fe.gap_update(
            self.last_step.value, self.gap.value, buckets, step, self.learning_rate, weight
        )
        # scatter_update (not scatter_nd_update): the one distributed variables implement.
        updates = [
            self.gap.value.scatter_update(tf.IndexedSlices(new_gap, buckets)),
            self.last_step.value.scatter_update(tf.IndexedSlices(new_last, buckets)),
        ]
        if self.weight is not None:
            updates.append(self.weight.value.scatter_update(tf.IndexedSlices(new_weight, buckets)))
        with tf.control_dependencies(updates):
            self.step.assign(step)
        return step

    def _read(self, buckets: tf.Tensor, shape) -> tf.Tensor:
        weight = None if self.weight is None else self.weight.value
        return tf.reshape(fe.probability_from_gaps(self.gap.value, buckets, weight), shape)

    def probability(self, ids) -> tf.Tensor:
        """The estimated arrivals per step of each id, float32 of ``ids``' shape."""
        ids = tf.convert_to_tensor(ids)
        return self._read(self._buckets(self._keys(ids)), tf.shape(ids))

    def call(self, ids, training=None):
        ids = tf.convert_to_tensor(ids)
        keys = self._keys(ids)
        buckets = self._buckets(keys)  # hashed once for the update and the read
        if training:
            step = self._update(keys, buckets)
            with tf.control_dependencies([step]):
                return self._read(buckets, tf.shape(ids))
        return self._read(buckets, tf.shape(ids))

    def compute_output_spec(self, ids, training=None):
        return keras.KerasTensor(ids.shape, dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_buckets=self.num_buckets,
            num_hashes=self.num_hashes,
            learning_rate=self.learning_rate,
            id_dtype=self.id_dtype,
            bias_correction=self.bias_correction,
        )
        return config
