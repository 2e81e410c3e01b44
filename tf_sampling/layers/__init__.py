"""Keras 3 output layers trained with sampled losses, exact at evaluation and inference.

* ``SampledSoftmax``, ``NCE``, ``RankSampledSoftmax``: own the class weights
  ``[num_classes, dim]``; return the hidden activations while training (the
  matching loss of the ``losses`` package computes the sampled loss from them) and
  exact full logits/probabilities otherwise.
* ``top_k``: the ``k`` best class ids and scores of ``model.predict`` output.
* ``top_k_model``, ``export_top_k``, ``TopKPredictions``: the ``k`` best
  classes straight from the head's table in class blocks (``predict`` and a
  SavedModel serving signature that never hold ``[batch, num_classes]``).
* ``AdaptiveSoftmax`` (exact adaptive softmax, trained on the exact
  likelihood), ``AdaptiveTopK``, ``adaptive_top_k_model``: its top-k.
* ``CandidateIndex``, ``export_candidate_index``: exact top-k retrieval over
  a whole candidate table in row blocks, and its SavedModel;
  ``RetrievalRecall``, ``RetrievalTopKAccuracy``: recall@k / top-k accuracy
  over it for several k from one scan per batch (``model.evaluate``).
* ``ResamplingTemperatureScheduler``: lower TAPAS' temperature during ``fit``.

See ``tf_sampling.layers.base`` for how the loss finds the layer. The matching
losses and metrics are registered with ``keras.saving`` by ``import tf_sampling``
(which importing this package runs first).
"""

from tf_sampling.layers.adaptive_softmax import AdaptiveSoftmax, AdaptiveTopK, adaptive_top_k_model
from tf_sampling.layers.base import SampledOutputLayer, TopK, top_k
from tf_sampling.layers.callbacks import ResamplingTemperatureScheduler
from tf_sampling.layers.candidate_index import CandidateIndex
from tf_sampling.layers.candidate_index_serving import export_candidate_index
from tf_sampling.layers.candidate_metrics import RetrievalRecall, RetrievalTopKAccuracy
from tf_sampling.layers.frequency_estimator import StreamingFrequencyEstimator
from tf_sampling.layers.nce import NCE
from tf_sampling.layers.rank_sampled_softmax import RankSampledSoftmax
from tf_sampling.layers.retrieval import (
    CandidateMemory,
    CorpusNegativeSampler,
    InBatchSoftmaxRetrieval,
)
from tf_sampling.layers.retrieval_evaluation import retrieval_top_k_accuracy
from tf_sampling.layers.sampled_softmax import SampledSoftmax
from tf_sampling.layers.top_k_predictions import TopKPredictions, export_top_k, top_k_model

__all__ = [
    "CandidateIndex",
    "AdaptiveSoftmax",
    "AdaptiveTopK",
    "CandidateMemory",
    "CorpusNegativeSampler",
    "InBatchSoftmaxRetrieval",
    "NCE",
    "RankSampledSoftmax",
    "ResamplingTemperatureScheduler",
    "RetrievalRecall",
    "RetrievalTopKAccuracy",
    "SampledOutputLayer",
    "SampledSoftmax",
    "StreamingFrequencyEstimator",
    "TopK",
    "TopKPredictions",
    "adaptive_top_k_model",
    "export_candidate_index",
    "export_top_k",
    "retrieval_top_k_accuracy",
    "top_k",
    "top_k_model",
]
