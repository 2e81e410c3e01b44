"""TensorFlow Recommenders' basic_retrieval on MovieLens-100K, with tf_sampling's retrieval layer.

Run from the repository root after ``scripts/setup.sh movielens``::

    python -m demo.movielens --seeds 5

``data``: install, check and load the data; ``train``: the protocol, its
variants, the results JSON and figure. Uses tf_sampling's public API only.
"""
