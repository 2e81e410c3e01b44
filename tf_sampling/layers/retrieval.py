"""Two-tower retrieval for Keras 3: the in-batch softmax layer, its negatives and its memory.

* ``InBatchSoftmaxRetrieval``: the loss layer of a two-tower model. Called
  with the towers' outputs (and ids), it returns the per-example loss and
  adds its reduction to the model's losses, so ``model.fit`` trains with it.
  It can own a ``StreamingFrequencyEstimator`` (logQ correction), a
  ``CandidateMemory`` (cross-batch negatives) and, under a synchronous
  strategy, use every replica's candidates as negatives.
* ``CandidateMemory``: a FIFO of the last ``capacity`` candidate embeddings,
  ids and sampling probabilities, kept in variables (saved with the model).
* ``CorpusNegativeSampler``: ids drawn from the candidate corpus, uniformly or
  by frequency, with their exact expected count (for mixed negatives: the
  model runs them through its candidate tower).

Ids are compared as int64 keys: integers as they are, strings by a 63-bit
fingerprint (``tf_sampling._core.frequency_estimation.id_keys``), so that ids
can be gathered across replicas and stored in the memory.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core import frequency_estimation as fe
from tf_sampling._core import label_sets
from tf_sampling._core.retrieval_loss import in_batch_softmax_loss
from tf_sampling.layers.frequency_estimator import StreamingFrequencyEstimator

__all__ = ["CandidateMemory", "CorpusNegativeSampler", "InBatchSoftmaxRetrieval"]

_REDUCTIONS = ("sum", "mean")


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _replicas():
    """The replica context when several replicas run in sync, else None."""
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        return context
    return None


def _gather_local_first(context, value: tf.Tensor) -> tf.Tensor:
    """All replicas' rows (equal counts per replica), this replica's first, then the next ones."""
    gathered = context.all_gather(value, axis=0)
    shift = context.replica_id_in_sync_group * tf.shape(value)[0]
    return tf.roll(gathered, -shift, axis=0)


@keras.saving.register_keras_serializable(package="tf_sampling")
class CandidateMemory(keras.layers.Layer):
    """A FIFO of the last ``capacity`` candidates (embedding, id, probability), without gradient.

    ``read()`` returns ``(embeddings [K, d], ids [K] int64, probability [K],
    valid [K] bool)``; ``write(embeddings, ids, probability)`` pushes a batch
    (only its last ``capacity`` rows when it is longer). Row order in the
    memory is a ring; the loss does not depend on it. In a replica context
    with several replicas, ``write`` gathers every replica's batch first (all
    replicas keep the same memory) unless ``gathered=True``.

    Args:
      capacity: ``K``, rows kept.
      embedding_dim: ``d``.
    """

    def __init__(self, capacity: int, embedding_dim: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.capacity = _check_positive_int(capacity, "capacity")
        self.embedding_dim = _check_positive_int(embedding_dim, "embedding_dim")
        common = dict(trainable=False, aggregation="only_first_replica")
        self.embeddings = self.add_weight(
            shape=(self.capacity, self.embedding_dim), initializer="zeros", dtype="float32",
            autocast=False, name="embeddings", **common,
        )  # fmt: skip
        self.ids = self.add_weight(
            shape=(self.capacity,), initializer="zeros", dtype="int64", name="ids", **common
        )
        self.probability = self.add_weight(
            shape=(self.capacity,), initializer="ones", dtype="float32", autocast=False,
            name="probability", **common,
        )  # fmt: skip
        self.filled = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", name="filled", **common
        )
        self.position = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", name="position", **common
        )
        self.built = True

    def read(self):
        valid = tf.range(self.capacity, dtype=tf.int64) < self.filled.value
        return (
            tf.stop_gradient(tf.identity(self.embeddings.value)),
            tf.identity(self.ids.value),
            tf.identity(self.probability.value),
            valid,
        )

    def write(self, embeddings, ids, probability=None, gathered: bool = False):
        embeddings = tf.stop_gradient(tf.cast(embeddings, tf.float32))
        ids = tf.cast(tf.reshape(ids, [-1]), tf.int64)
        if probability is None:
            probability = tf.ones(tf.shape(ids), tf.float32)
        probability = tf.cast(tf.reshape(probability, [-1]), tf.float32)
        context = None if gathered else _replicas()
        if context is not None:
            embeddings, ids, probability = (
                context.all_gather(v, axis=0) for v in (embeddings, ids, probability)
            )
        # Only the last `capacity` rows survive a longer batch: write just those.
        embeddings = embeddings[-self.capacity :]
        ids = ids[-self.capacity :]
        probability = probability[-self.capacity :]
        count = tf.shape(ids, out_type=tf.int64)[0]
        slots = (self.position.value + tf.range(count, dtype=tf.int64)) % self.capacity
        updates = [
            self.embeddings.value.scatter_update(tf.IndexedSlices(embeddings, slots)),
            self.ids.value.scatter_update(tf.IndexedSlices(ids, slots)),
            self.probability.value.scatter_update(tf.IndexedSlices(probability, slots)),
        ]
        with tf.control_dependencies(updates):
            self.filled.assign(tf.minimum(self.filled.value + count, self.capacity))
            self.position.assign((self.position.value + count) % self.capacity)

    def call(self, inputs=None):
        return self.read()

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(capacity=self.capacity, embedding_dim=self.embedding_dim)
        return config


@keras.saving.register_keras_serializable(package="tf_sampling")
class CorpusNegativeSampler(keras.layers.Layer):
    """Draws ``num_negatives`` corpus indices (with replacement) and their expected counts.

    ``sampler()`` returns ``(indices [M] int64, expected_count [M] float32)``
    where ``expected_count[m] = M * q(indices[m])``: the exact expected number
    of times that index is drawn in one call, the value the logQ correction
    uses for these columns (the same scale as the frequency estimator's
    arrivals per batch for the in-batch ones).

    Args:
      corpus_size: ``N``, indices are drawn from ``[0, N)``.
      num_negatives: ``M`` draws per call.
      counts: None for uniform draws (``q = 1/N``), or ``[N]`` non-negative
        frequencies (``q = counts / sum(counts)``; a zero is never drawn).
      seed: Optional int for reproducible draws.
    """

    def __init__(self, corpus_size: int, num_negatives: int, counts=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.corpus_size = _check_positive_int(corpus_size, "corpus_size")
        self.num_negatives = _check_positive_int(num_negatives, "num_negatives")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.log_q = None
        if counts is not None:
            counts = np.asarray(counts, np.float64).reshape(-1)
            if counts.shape != (self.corpus_size,):
                raise ValueError(
                    f"`counts` must have shape [corpus_size] = [{self.corpus_size}], got "
                    f"{counts.shape}."
                )
            if not np.all(np.isfinite(counts)) or (counts < 0).any() or counts.sum() <= 0:
                raise ValueError(
                    "`counts` must be finite, non-negative and not all zero, got "
                    f"{counts[:8].tolist()}..."
                )
            with np.errstate(divide="ignore"):
                log_q = np.log(counts / counts.sum())
            self.log_q = self.add_weight(
                shape=(self.corpus_size,), dtype="float32", trainable=False, autocast=False,
                initializer=keras.initializers.Constant(log_q.astype(np.float32)), name="log_q",
            )  # fmt: skip
        self.built = True

    def call(self, inputs=None):
        m = self.num_negatives
        if self.log_q is None:
            indices = keras.random.randint(
                (m,), 0, self.corpus_size, dtype="int64", seed=self.seed_generator
            )
            return indices, tf.fill([m], tf.constant(m / self.corpus_size, tf.float32))
        log_q = tf.convert_to_tensor(self.log_q.value)
        indices = tf.reshape(
            keras.random.categorical(log_q[None, :], m, dtype="int64", seed=self.seed_generator),
            [m],
        )
        return indices, m * tf.exp(tf.gather(log_q, indices))

    def get_config(self) -> dict:
        config = super().get_config()
        counts = None
        if self.log_q is not None:
            counts = np.exp(keras.ops.convert_to_numpy(self.log_q)).tolist()
        config.update(
            corpus_size=self.corpus_size, num_negatives=self.num_negatives, counts=counts,
            seed=self.seed,
        )  # fmt: skip
        return config


@keras.saving.register_keras_serializable(package="tf_sampling")
class InBatchSoftmaxRetrieval(keras.layers.Layer):
    """In-batch softmax loss layer of a two-tower model (``tf_sampling.nn.in_batch_softmax_loss``).

    ``layer(query_embeddings [B, d], candidate_embeddings [B, d],
    candidate_ids=[B], query_ids=[B], ...)`` returns the per-example loss
    ``[B]`` and adds its ``reduction`` (``"sum"``, as TensorFlow
    Recommenders' ``Retrieval`` task, or ``"mean"``) to the layer's losses,
    which ``model.fit`` minimises. In training it also, in this order:

    1. updates its frequency estimator with the batch's candidate ids and
       subtracts ``log p`` of each column (``logq_correction=True``);
    2. adds the memory's valid rows as extra negatives, then pushes this
       batch's candidates into it (``memory_size > 0``);
    3. under a synchronous strategy with ``global_negatives=True``, scores
       every replica's candidates (equal per-replica batches), so each
       replica's rows see the global batch's columns, as one device would.

    Extra negatives drawn by the model (mixed negatives, e.g. from a
    ``CorpusNegativeSampler`` run through the candidate tower) come in as
    ``extra_negative_embeddings`` with their ids and expected counts. Ids
    are needed for hit removal, the estimator and the memory.

    ``known_positive_ids`` (each row's known positive set, e.g. every item
    the user interacted with) removes those ids from the row's negatives in
    every column: in-batch, mixed, memory and other replicas' (the diagonal is
    kept). It takes a ``tf.RaggedTensor`` ``[B, (n_i)]`` or a dense ``[B, K]``
    tensor: padded with the layer's ``padding_id`` when that is set (the form
    a Keras model input can carry), else every slot real. (An
    ``nn.label_set`` cannot pass Keras' ``__call__``, which refuses a tuple
    mixing tensors and ints.) String ids are compared by the same
    fingerprint as ``candidate_ids`` (ragged, or dense without ``padding_id``).

    Args:
      temperature: positive float dividing the scores.
      remove_accidental_hits: drop columns with row ``i``'s positive id.
      mask_same_query: drop the other positives of row ``i``'s query in the
        batch (needs ``query_ids``).
      logq_correction: own a ``StreamingFrequencyEstimator`` and correct by it.
      estimator_buckets, estimator_hashes, estimator_learning_rate: its options.
      memory_size: rows of the cross-batch memory (0: none).
      embedding_dim: ``d``, required when ``memory_size > 0``.
      global_negatives: gather candidates over replicas.
      reduction: ``"sum"`` or ``"mean"`` of the per-example losses.
      padding_id: Optional int marking the padded slots of a dense
        ``known_positive_ids`` ``[B, K]`` (e.g. -1); no candidate may have it.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        remove_accidental_hits: bool = True,
        mask_same_query: bool = False,
        logq_correction: bool = False,
        estimator_buckets: int = 1 << 20,
        estimator_hashes: int = 2,
        estimator_learning_rate: float = 0.01,
        memory_size: int = 0,
        embedding_dim: int | None = None,
        global_negatives: bool = False,
        reduction: str = "sum",
        padding_id: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise TypeError(f"`temperature` must be a positive number, got {temperature!r}.")
        if not 0 < temperature < float("inf"):
            raise ValueError(
                f"`temperature` must be a positive finite number, got {temperature!r}."
            )
        for value, name in (
            (remove_accidental_hits, "remove_accidental_hits"),
            (mask_same_query, "mask_same_query"),
            (logq_correction, "logq_correction"),
            (global_negatives, "global_negatives"),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"`{name}` must be a bool, got {value!r}.")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {_REDUCTIONS}, got {reduction!r}.")
        padding_id = label_sets.check_padding_id(padding_id)
        self.padding_id = padding_id
        self.temperature = float(temperature)
        self.remove_accidental_hits = remove_accidental_hits
        self.mask_same_query = mask_same_query
        self.logq_correction = logq_correction
        self.estimator_buckets, self.estimator_hashes, self.estimator_learning_rate = (
            fe.check_estimator_options(estimator_buckets, estimator_hashes, estimator_learning_rate)
        )
        self.memory_size = _check_positive_int(memory_size, "memory_size", minimum=0)
        self.embedding_dim = embedding_dim
        self.global_negatives = global_negatives
        self.reduction = reduction
        self.estimator = None
        if logq_correction:
            self.estimator = StreamingFrequencyEstimator(
                self.estimator_buckets, self.estimator_hashes, self.estimator_learning_rate,
                id_dtype="int64", name="estimator",
            )  # fmt: skip
        self.memory = None
        if self.memory_size:
            if embedding_dim is None:
                raise ValueError("`embedding_dim` is required when `memory_size` > 0, got None.")
            self.memory = CandidateMemory(self.memory_size, embedding_dim, name="memory")
        self.built = True

    def call(
        self,
        query_embeddings,
        candidate_embeddings,
        candidate_ids=None,
        query_ids=None,
        candidate_sampling_probability=None,
        extra_negative_embeddings=None,
        extra_negative_ids=None,
        extra_negative_sampling_probability=None,
        sample_weight=None,
        known_positive_ids=None,
        training=None,
    ):
        needs_ids = self.remove_accidental_hits or self.logq_correction or self.memory is not None
        if needs_ids and candidate_ids is None:
            raise ValueError(
                "`candidate_ids` is required with remove_accidental_hits, logq_correction or a "
                "memory; got None."
            )
        if self.mask_same_query and query_ids is None:
            raise ValueError("`query_ids` is required with mask_same_query=True; got None.")
        if self.logq_correction and candidate_sampling_probability is not None:
            raise ValueError(
                "`candidate_sampling_probability` is given but logq_correction=True takes it "
                "from the layer's estimator; pass one or the other."
            )
        known = None
        if known_positive_ids is not None:
            if not self.remove_accidental_hits:
                raise ValueError(
                    "`known_positive_ids` is given but remove_accidental_hits=False: the known "
                    "positives are removed by the columns' ids, with the hits."
                )
            known = self._known_keys(known_positive_ids)
        keys = None if candidate_ids is None else fe.id_keys(candidate_ids)
        qkeys = None if query_ids is None or not self.mask_same_query else fe.id_keys(query_ids)
        candidates = candidate_embeddings
        prob = candidate_sampling_probability
        if self.estimator is not None:
            # The global batch updates the estimator (it gathers the replicas' ids itself).
            prob = self.estimator(keys, training=training)
        corrected = prob is not None

        extra_emb, extra_ids, extra_p, extra_q, extra_keep = [], [], [], None, []

        def add_extra(emb, ids, p, keep=None):
            extra_emb.append(tf.cast(emb, candidates.dtype))
            if ids is not None:
                extra_ids.append(tf.cast(ids, tf.int64))
            n = tf.shape(emb)[0]
            extra_p.append(tf.ones([n], tf.float32) if p is None else tf.cast(p, tf.float32))
            extra_keep.append(tf.ones([n], tf.bool) if keep is None else keep)

        context = _replicas() if self.global_negatives else None
        gathered = None
        if context is not None:
            # Other replicas' candidates first among the extras: they carry query ids.
            parts = {"emb": candidates}
            if keys is not None:
                parts["ids"] = keys
            if corrected:
                parts["p"] = tf.cast(prob, tf.float32)
            if qkeys is not None:
                parts["q"] = qkeys
            gathered = {k: _gather_local_first(context, v) for k, v in parts.items()}
            local = tf.shape(candidates)[0]
            add_extra(
                gathered["emb"][local:],
                gathered["ids"][local:] if keys is not None else None,
                gathered["p"][local:] if corrected else None,
            )
            if qkeys is not None:
                extra_q = gathered["q"][local:]
        if extra_negative_embeddings is not None:
            if keys is not None and extra_negative_ids is None:
                raise ValueError(
                    "`extra_negative_ids` is required with `extra_negative_embeddings` when "
                    "candidate ids are used; got None."
                )
            if corrected and extra_negative_sampling_probability is None:
                raise ValueError(
                    "`extra_negative_sampling_probability` is required with "
                    "`extra_negative_embeddings` under the logQ correction; got None."
                )
            add_extra(
                extra_negative_embeddings,
                None if extra_negative_ids is None else fe.id_keys(extra_negative_ids),
                extra_negative_sampling_probability,
            )
        use_memory = self.memory is not None and training
        if use_memory:
            m_emb, m_ids, m_p, m_valid = self.memory.read()
            add_extra(m_emb, m_ids, m_p, m_valid)

        kwargs = {}
        if extra_emb:
            kwargs["extra_negative_embeddings"] = tf.concat(extra_emb, 0)
            if self.remove_accidental_hits:
                kwargs["extra_negative_ids"] = tf.concat(extra_ids, 0)
            if corrected:
                kwargs["extra_negative_sampling_probability"] = tf.concat(extra_p, 0)
            if use_memory:
                kwargs["extra_negative_mask"] = tf.concat(extra_keep, 0)
            if extra_q is not None:
                kwargs["extra_negative_query_ids"] = extra_q
        loss = in_batch_softmax_loss(
            query_embeddings,
            candidates,
            candidate_ids=keys if self.remove_accidental_hits else None,
            candidate_sampling_probability=prob if corrected else None,
            query_ids=qkeys,
            known_positive_ids=known,
            temperature=self.temperature,
            sample_weight=sample_weight,
            **kwargs,
        )
        if use_memory:
            with tf.control_dependencies([loss]):
                if gathered is not None:
                    self.memory.write(
                        gathered["emb"], gathered["ids"], gathered.get("p"), gathered=True
                    )
                else:
                    self.memory.write(candidates, keys, prob)
        reduced = tf.reduce_sum(loss) if self.reduction == "sum" else tf.reduce_mean(loss)
        self.add_loss(reduced)
        return loss

    def _known_keys(self, known):
        """``known_positive_ids`` in the loss's form, its ids as the int64 keys of ``id_keys``."""
        if isinstance(known, tf.RaggedTensor):
            if known.dtype == tf.string:
                return known.with_flat_values(fe.id_keys(known.flat_values))
            return known
        known = tf.convert_to_tensor(known)
        if known.dtype == tf.string:
            if self.padding_id is not None:
                raise TypeError(
                    "`known_positive_ids` of strings cannot be padded with the layer's int "
                    f"padding_id={self.padding_id}; pass them ragged."
                )
            return tf.reshape(fe.id_keys(known), tf.shape(known))
        if self.padding_id is not None:
            return label_sets.label_set(known, padding_id=self.padding_id)
        return known

    def compute_output_spec(self, query_embeddings, *args, **kwargs):
        return keras.KerasTensor(query_embeddings.shape[:1], dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            temperature=self.temperature,
            remove_accidental_hits=self.remove_accidental_hits,
            mask_same_query=self.mask_same_query,
            logq_correction=self.logq_correction,
            estimator_buckets=self.estimator_buckets,
            estimator_hashes=self.estimator_hashes,
            estimator_learning_rate=self.estimator_learning_rate,
            memory_size=self.memory_size,
            embedding_dim=self.embedding_dim,
            global_negatives=self.global_negatives,
            reduction=self.reduction,
            padding_id=self.padding_id,
        )
        return config
