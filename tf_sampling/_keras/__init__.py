"""The contract between the Keras output layers, losses and metrics.

Keras calls ``loss(y_true, y_pred)`` and ``metric.update_state(y_true,
y_pred)`` on what the model returned; neither sees the model. This package is
what the three sides agree on, kept below all of them (as Keras keeps its mask
contract in ``backend/common``):

* ``output_tags``: what an output layer attaches to the tensor it returns (the
  layer, and whether the tensor holds hidden activations, logits or
  probabilities), and the marker base class of those layers.
* ``full_loss``: Keras' ``y_true``/``y_pred`` shapes flattened to the
  functional losses' ``[n, num_true]`` / ``[n, features]``, and the exact loss
  over all classes that evaluation reports.
"""
