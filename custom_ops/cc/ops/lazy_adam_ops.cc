// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// Interface of the fused row update of tf_sampling.optimizers.LazyAdam. The
// kernel lives in ../kernels/lazy_adam_kernels.cc.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tf_sampling {
namespace {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status SparseApplyLazyAdamShape(InferenceContext* c) {
  ShapeHandle unused;
  // alpha, one_minus_beta_1, one_minus_beta_2, epsilon, learning_rate,
  // weight_decay are scalars.
  for (int i = 3; i <= 8; ++i) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  ShapeHandle grad = c->input(9);
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(grad, 1, &grad));
  ShapeHandle indices;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(10), 1, &indices));
  TF_RETURN_IF_ERROR(c->Merge(c->Vector(c->Dim(grad, 0)), indices, &unused));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfSampling>ResourceSparseApplyLazyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("alpha: T")
    .Input("one_minus_beta_1: T")
    .Input("one_minus_beta_2: T")
    .Input("epsilon: T")
    .Input("learning_rate: T")
    .Input("weight_decay: T")
    .Input("grad: T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("per_lookup_second_moment: bool = false")
    .Attr("use_weight_decay: bool = false")
    .SetShapeFn(SparseApplyLazyAdamShape)
    .Doc(R"doc(
One lazy Adam step on the rows of var, m and v that indices names, in place
and under the three variables' locks; untouched rows are not read or written.

grad [n, *row] holds one row per entry of indices [n]; indices may repeat.
The rows of an index are summed (in the order they appear) into g; the second
moment is fed g * g, or with per_lookup_second_moment the sum of the rows'
squares. Then, element by element and in this order:
  var -= (var * weight_decay) * learning_rate    (if use_weight_decay)
  m += (g - m) * one_minus_beta_1
  v += (s - v) * one_minus_beta_2
  var -= (m * alpha) / (sqrt(v) + epsilon)
alpha is the bias-corrected step size,
learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t).

Fails, before changing anything, on an index outside [0, var.shape[0]), on
shapes that do not agree (var, m, v [rows, *row]; grad [n, *row]) and on
var, m and v not being three different initialized variables of dtype T.
)doc");

}  // namespace tf_sampling
