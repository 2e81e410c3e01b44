"""Multi-label job on MovieLens-100K: a user's liked movies -> the next group they like.

``python -m demo.multilabel`` (after ``scripts/setup.sh demo movielens``):
sampled softmax on padded label sets vs the exact full softmax vs padding by
repetition, with exact precision@k, recall@k and nDCG@k. See ``train``.
"""
