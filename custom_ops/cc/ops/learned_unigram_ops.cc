// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// Interfaces of the learned-unigram candidate-sampling ops. Kernels live in
// ../kernels/learned_unigram_kernels.cc. Every op name carries the
// "TfSampling>" namespace so it can never clash with TensorFlow's own ops.

#include <cstdint>

#include "custom_ops/cc/kernels/count_tree.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tf_sampling {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Checks that input `index` (true_classes) is a [batch_size, num_true] matrix
// and sets the three sampler outputs, starting at output 0, from the attrs.
absl::Status SamplerShape(InferenceContext* c, int index, int64_t range_max) {
  int64_t num_true = 0;
  int64_t num_sampled = 0;
  bool unique = false;
  TF_RETURN_IF_ERROR(c->GetAttr("num_true", &num_true));
  TF_RETURN_IF_ERROR(c->GetAttr("num_sampled", &num_sampled));
  TF_RETURN_IF_ERROR(c->GetAttr("unique", &unique));
  if (unique && range_max > 0 && num_sampled > range_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_sampled must be <= range_max when unique=True, got num_sampled=",
        num_sampled, " and range_max=", range_max));
  }
  ShapeHandle true_classes = c->input(index);
  if (c->RankKnown(true_classes) && c->Rank(true_classes) != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "true_classes must be a matrix [batch_size, num_true], got shape ",
        c->DebugString(true_classes)));
  }
  TF_RETURN_IF_ERROR(c->WithRank(true_classes, 2, &true_classes));
  DimensionHandle columns = c->Dim(true_classes, 1);
  if (c->ValueKnown(columns) && c->Value(columns) != num_true) {
    return absl::InvalidArgumentError(
        absl::StrCat("true_classes must have num_true=", num_true,
                     " columns, got shape ", c->DebugString(true_classes)));
  }
  ShapeHandle sampled = c->Vector(num_sampled);
  c->set_output(0, sampled);
  c->set_output(1, c->Matrix(c->Dim(true_classes, 0), num_true));
  c->set_output(2, sampled);
  return absl::OkStatus();
}

absl::Status CandidateSamplerShape(InferenceContext* c) {
  int64_t range_max = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("range_max", &range_max));
  return SamplerShape(c, /*index=*/0, range_max);
}

absl::Status SampleAndUpdateShape(InferenceContext* c) {
  int64_t range_max = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("range_max", &range_max));
  // When the variable's shape is known, it must be the count tree's.
  const auto* handle_data = c->input_handle_shapes_and_types(0);
  if (handle_data != nullptr && handle_data->size() == 1) {
    ShapeHandle tree = (*handle_data)[0].shape;
    const int64_t size = TreeShape(range_max).flat_size();
    if (c->RankKnown(tree) &&
        (c->Rank(tree) != 1 || (c->ValueKnown(c->Dim(tree, 0)) &&
                                c->Value(c->Dim(tree, 0)) != size))) {
      return absl::InvalidArgumentError(
          absl::StrCat("the state variable must have shape [", size,
                       "] (the count tree of range_max=", range_max,
                       "), got shape ", c->DebugString(tree)));
    }
  }
  return SamplerShape(c, /*index=*/2, range_max);
}

// Checks that input 0 is a vector.
absl::Status CheckVectorInput(InferenceContext* c, const char* what) {
  if (c->RankKnown(c->input(0)) && c->Rank(c->input(0)) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be a vector, got shape ", c->DebugString(c->input(0))));
  }
  return absl::OkStatus();
}

absl::Status TreeToCountsShape(InferenceContext* c) {
  TF_RETURN_IF_ERROR(CheckVectorInput(c, "tree"));
  int64_t range_max = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("range_max", &range_max));
  c->set_output(0, c->Vector(range_max));
  return absl::OkStatus();
}

absl::Status CountsToTreeShape(InferenceContext* c) {
  TF_RETURN_IF_ERROR(CheckVectorInput(c, "counts"));
  ShapeHandle counts;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &counts));
  int64_t range_max = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("range_max", &range_max));
  DimensionHandle range = c->Dim(counts, 0);
  if (range_max > 0) {
    if (c->ValueKnown(range) && c->Value(range) != range_max) {
      return absl::InvalidArgumentError(
          absl::StrCat("counts must have shape [range_max] = [", range_max,
                       "], got shape ", c->DebugString(counts)));
    }
    c->set_output(0, c->Vector(TreeShape(range_max).flat_size()));
  } else if (c->ValueKnown(range) && c->Value(range) >= 1) {
    c->set_output(0, c->Vector(TreeShape(c->Value(range)).flat_size()));
  } else {
    c->set_output(0, c->Vector(c->UnknownDim()));
  }
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfSampling>LearnedUnigramCandidateSampler")
    .Input("true_classes: int64")
    .Output("sampled_candidates: int64")
    .Output("true_expected_count: float")
    .Output("sampled_expected_count: float")
    .Attr("num_true: int >= 1")
    .Attr("num_sampled: int >= 1")
    .Attr("unique: bool")
    .Attr("range_max: int >= 1")
    .Attr("seed: int = 0")
    .Attr("seed2: int = 0")
    .Attr("storage: {'auto', 'dense', 'sparse'} = 'auto'")
    .SetShapeFn(CandidateSamplerShape)
    .SetIsStateful()
    .Doc(R"doc(
Samples candidates from a unigram distribution learned from the true classes.

Drop-in equivalent of TensorFlow's LearnedUnigramCandidateSampler: each op
instance (kernel) keeps its own counts; every class starts at weight 1 and
gains 1 per occurrence in `true_classes`, applied after the call's sampling.
Costs O((batch_size * num_true + num_sampled) * log(range_max)) per call, and
accepts any range_max that fits in int64; a call that would take the total
weight range_max + sum(counts) past 2^63 - 1 fails and changes nothing.
Unique sampling rejects repeats for at most 1024 * num_sampled draws (within
them the draws are TensorFlow's), then draws the rest from the classes not yet
picked, with the same law; num_sampled must be < 2^31.

true_classes: [batch_size, num_true] target classes, in [0, range_max).
sampled_candidates: [num_sampled] sampled classes.
true_expected_count: [batch_size, num_true] expected count of each true class.
sampled_expected_count: [num_sampled] expected count of each sampled class.
num_true: number of target classes per example.
num_sampled: number of candidates to draw.
unique: if true, draw without replacement (rejection sampling).
range_max: number of classes.
seed: op seed; with seed2, both 0 means non-deterministic.
seed2: second seed.
storage: how the kernel stores the counts: 'dense' (a lazily zeroed array of
  about 8/7 * range_max int64), 'sparse' (a hash map of the touched tree
  blocks), or 'auto' (dense up to 2^26 classes, sparse beyond).
)doc");

REGISTER_OP("TfSampling>LearnedUnigramSampleAndUpdate")
    .Input("tree: resource")
    .Input("offset: resource")
    .Input("true_classes: int64")
    .Output("sampled_candidates: int64")
    .Output("true_expected_count: float")
    .Output("sampled_expected_count: float")
    .Attr("num_true: int >= 1")
    .Attr("num_sampled: int >= 1")
    .Attr("unique: bool")
    .Attr("range_max: int >= 1")
    .Attr("seed: int = 0")
    .Attr("seed2: int = 0")
    .SetShapeFn(SampleAndUpdateShape)
    .SetIsStateful()
    .Doc(R"doc(
Learned-unigram sampling from counts held in a user-owned int64 variable.

`tree` is an int64 resource variable holding the count tree of range_max
classes (see TfSampling>LearnedUnigramCountsToTree): an 8-ary tree of 64-byte
blocks of prefix sums of the counts, level 0 first, about 8/7 * range_max
entries. Class weights are 1 + count. `offset` is an int64 scalar variable: the position (in 128-bit
Philox samples) of the random stream of (seed, seed2). Under the variables'
locks, the kernel samples exactly as TfSampling>LearnedUnigramCandidateSampler
does, adds the true classes to the counts in place and advances `offset`:
O((batch_size * num_true + num_sampled) * log(range_max)) per call, with no
copy of the tree.
)doc");

REGISTER_OP("TfSampling>LearnedUnigramTreeToCounts")
    .Input("tree: int64")
    .Output("counts: int64")
    .Attr("range_max: int >= 1")
    .SetShapeFn(TreeToCountsShape)
    .Doc(R"doc(
Decodes the count tree of range_max classes into per-class counts
[range_max]; O(range_max), meant for inspection.
)doc");

REGISTER_OP("TfSampling>LearnedUnigramCountsToTree")
    .Input("counts: int64")
    .Output("tree: int64")
    .Attr("range_max: int >= 0 = 0")
    .SetShapeFn(CountsToTreeShape)
    .Doc(R"doc(
Encodes per-class counts [range_max] as the count tree the sampler reads:
level 0 holds one entry per class, level l + 1 one entry per block of 8
entries of level l, up to a single block; each block of 8 holds the inclusive
prefix sums of its entries' counts, and each level is padded to whole blocks.
The inverse of TfSampling>LearnedUnigramTreeToCounts; O(range_max). Fails
on a negative count, on counts summing past 2^63 - 1 - range_max (the
sampler's total weight must fit in int64), and, when range_max > 0, on a
length other than range_max (range_max = 0 takes the length as given).
)doc");

}  // namespace tf_sampling
