"""Runs a sampled loss in eager, tf.function or TF1 graph mode and returns NumPy results.

Shared by the parity tests: the same arrays go through ``tf_sampling.nn`` and
TensorFlow's built-in ``tf.compat.v1.nn`` (or a NumPy reference), and every
result comes back as dense NumPy arrays: the per-example loss and the
gradients of ``sum(loss * cotangent)`` with respect to each weight shard, each
bias shard and the inputs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

MODES = ("eager", "function", "graph")


@dataclasses.dataclass
class Result:
    loss: np.ndarray
    grad_weights: list[np.ndarray]
    grad_biases: list[np.ndarray]
    grad_inputs: np.ndarray
    weight_grad_types: list[str]


def _dense(g) -> np.ndarray:
    return np.asarray(tf.convert_to_tensor(g))


def run(
    loss_fn,
    mode,
    weights,
    biases,
    labels,
    inputs,
    cotangent,
    sampled_values=None,
    wrap=None,
    convert_sampled_values=True,
    **kwargs,
):
    """Evaluates ``loss_fn`` and its gradients.

    Args:
      loss_fn: ``sampled_softmax_loss``-like callable.
      mode: one of ``MODES``.
      weights: list of ``[rows_k, dim]`` arrays (one entry: unsharded).
      biases: list of ``[rows_k]`` arrays.
      labels: int array ``[batch]`` or ``[batch, num_true]``.
      inputs: float array ``[batch, dim]``.
      cotangent: float array ``[batch]`` weighting each example's loss.
      sampled_values: optional triple of arrays.
      wrap: optional callable turning the list of shard variables into the
        ``weights``/``biases`` argument (default: the single variable or the list).
      convert_sampled_values: whether each entry of ``sampled_values`` becomes a
        ``tf.constant`` (default) or is passed as given (Python lists...).
      **kwargs: passed to ``loss_fn``.

    Returns:
      Result: dense NumPy results.
    """
    wrap = wrap or (lambda vs: vs[0] if len(vs) == 1 else vs)

    def body(w_vars, b_vars, x):
        sv = sampled_values
        if sv is not None and convert_sampled_values:
            sv = tuple(tf.constant(v) for v in sampled_values)
        loss = loss_fn(
            wrap(w_vars), wrap(b_vars), tf.constant(labels), x, sampled_values=sv, **kwargs
        )
        return loss, tf.reduce_sum(tf.cast(loss, tf.float64) * cotangent)

    if mode == "graph":
        with tf.Graph().as_default():
            w_vars = [tf.compat.v1.Variable(w) for w in weights]
            b_vars = [tf.compat.v1.Variable(b) for b in biases]
            x = tf.constant(inputs)
            loss, total = body(w_vars, b_vars, x)
            grads = tf.compat.v1.gradients(total, w_vars + b_vars + [x])
            types = [type(g).__name__ for g in grads[: len(w_vars)]]
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                dense = sess.run([loss] + [tf.convert_to_tensor(g) for g in grads])
        n = len(weights)
        return Result(
            dense[0], dense[1 : 1 + n], dense[1 + n : 1 + 2 * len(biases)], dense[-1], types
        )

    w_vars = [tf.Variable(w) for w in weights]
    b_vars = [tf.Variable(b) for b in biases]
    x = tf.constant(inputs)

    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, total = body(w_vars, b_vars, x)
        grads = tape.gradient(total, w_vars + b_vars + [x])
        return loss, grads

    if mode == "function":
        types_box = []

        @tf.function
        def traced():
            loss, grads = step()
            types_box[:] = [type(g).__name__ for g in grads[: len(w_vars)]]
            return loss, [tf.convert_to_tensor(g) for g in grads]

        loss, grads = traced()
        types = list(types_box)
    else:
        loss, grads = step()
        types = [type(g).__name__ for g in grads[: len(w_vars)]]
    grads = [_dense(g) for g in grads]
    n = len(weights)
    return Result(np.asarray(loss), grads[:n], grads[n : n + len(biases)], grads[-1], types)
