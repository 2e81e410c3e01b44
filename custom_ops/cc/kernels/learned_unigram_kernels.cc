// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// CPU kernels of the learned-unigram ops declared in
// ../ops/learned_unigram_ops.cc.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "custom_ops/cc/kernels/candidate_draws.h"
#include "custom_ops/cc/kernels/count_tree.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/lib/random/simple_philox.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/util/guarded_philox_random.h"
#include "tsl/platform/random.h"

namespace tf_sampling {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;

// Ranges up to this size keep their counts in a dense (lazily zeroed) array
// under storage='auto'; larger ones in a hash map.
constexpr int64_t kMaxDenseRange = int64_t{1} << 26;

// TensorFlow's candidate samplers hold num_sampled in an int32.
constexpr int64_t kMaxNumSampled = (int64_t{1} << 31) - 1;

// The error for a tree variable that FlatTreeFitsRange refuses.
absl::Status TreeMismatch(const TreeShape& shape) {
  return absl::InvalidArgumentError(absl::StrCat(
      "the count tree is not one of range_max=", shape.range(),
      " classes: it counts classes >= range_max, or its total weight is "
      "outside [range_max, 2^63 - 1] (was it restored from a sampler with "
      "another range_max?)"));
}

// Attributes, validation and output allocation shared by the sampling ops.
class SamplerKernelBase : public OpKernel {
 public:
  explicit SamplerKernelBase(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("num_true", &num_true_));
    OP_REQUIRES_OK(context, context->GetAttr("num_sampled", &num_sampled_));
    OP_REQUIRES_OK(context, context->GetAttr("unique", &unique_));
    OP_REQUIRES_OK(context, context->GetAttr("range_max", &range_max_));
    OP_REQUIRES(context, num_sampled_ <= kMaxNumSampled,
                absl::InvalidArgumentError(absl::StrCat(
                    "num_sampled must be <= 2^31 - 1, got num_sampled=",
                    num_sampled_)));
    OP_REQUIRES(context, !unique_ || num_sampled_ <= range_max_,
                absl::InvalidArgumentError(absl::StrCat(
                    "num_sampled must be <= range_max when unique=True, got "
                    "num_sampled=",
                    num_sampled_, " and range_max=", range_max_)));
    OP_REQUIRES_OK(context, context->GetAttr("seed", &seed_));
    OP_REQUIRES_OK(context, context->GetAttr("seed2", &seed2_));
    if (seed_ == 0 && seed2_ == 0) {
      // Unseeded: random seeds, as TensorFlow's GuardedPhiloxRandom picks.
      seed_ = static_cast<int64_t>(tsl::random::New64());
      seed2_ = static_cast<int64_t>(tsl::random::New64());
    }
  }

 protected:
  struct Outputs {
    const int64_t* true_classes = nullptr;
    int64_t num_true_classes = 0;
    int64_t* sampled = nullptr;
    float* true_expected = nullptr;
    float* sampled_expected = nullptr;
  };

  // Validates true_classes (input `index`) against the attrs and allocates
  // the three outputs.
  absl::Status Prepare(OpKernelContext* context, int index, Outputs* out) {
    const Tensor& true_classes = context->input(index);
    if (true_classes.dims() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "true_classes must be a matrix [batch_size, num_true], got shape ",
          true_classes.shape().DebugString()));
    }
    if (true_classes.dim_size(1) != num_true_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "true_classes must have num_true=", num_true_, " columns, got shape ",
          true_classes.shape().DebugString()));
    }
    const int64_t batch_size = true_classes.dim_size(0);
    out->true_classes = true_classes.flat<int64_t>().data();
    out->num_true_classes = batch_size * num_true_;
    for (int64_t i = 0; i < out->num_true_classes; ++i) {
      const int64_t c = out->true_classes[i];
      if (c < 0 || c >= range_max_) {
        // TensorFlow's own wording first (code matching its message keeps
        // working), then the argument and the entry.
        return absl::InvalidArgumentError(absl::StrCat(
            "`true_candidate` out of range [0, ", range_max_, "), received ", c,
            ": true_classes must be in [0, range_max), got true_classes[",
            i / num_true_, ", ", i % num_true_, "] = ", c));
      }
    }
    Tensor* tensor = nullptr;
    TF_RETURN_IF_ERROR(
        context->allocate_output(0, TensorShape({num_sampled_}), &tensor));
    out->sampled = tensor->flat<int64_t>().data();
    TF_RETURN_IF_ERROR(context->allocate_output(
        1, TensorShape({batch_size, num_true_}), &tensor));
    out->true_expected = tensor->flat<float>().data();
    TF_RETURN_IF_ERROR(
        context->allocate_output(2, TensorShape({num_sampled_}), &tensor));
    out->sampled_expected = tensor->flat<float>().data();
    return absl::OkStatus();
  }

  // Philox 128-bit samples each call reserves: as many 32-bit draws as
  // TensorFlow's candidate samplers reserve, so that successive calls read
  // the same stream positions as theirs.
  int64_t SamplesPerCall() const { return (2048 * num_sampled_ + 3) / 4; }

  // Refuses a call whose counting would take the total weight past int64
  // (checked before anything changes).
  absl::Status CheckRoom(int64_t total_weight, const Outputs& out) const {
    if (out.num_true_classes <= INT64_MAX - total_weight) {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the learned-unigram total weight range_max + sum(counts) = ",
        total_weight, " plus this call's ", out.num_true_classes,
        " true classes would exceed 2^63 - 1 (range_max=", range_max_, ")"));
  }

  // Samples from `tree` with `philox`, fills the expected counts, then counts
  // the true classes: the order TensorFlow's LearnedUnigramCandidateSampler
  // uses. Callers have checked CheckRoom.
  template <typename Store>
  void SampleThenLearn(CountTree<Store>* tree,
                       tensorflow::random::PhiloxRandom philox,
                       const Outputs& out) {
    // A stream of its own for completing skewed unique samples: the call's
    // counter under another key, independent of every call's rejections.
    auto key = philox.key();
    key[0] ^= 0x9E3779B9u;
    key[1] ^= 0x7F4A7C15u;
    tensorflow::random::PhiloxRandom rest(philox.counter(), key);
    tensorflow::random::SimplePhilox rest_rng(&rest);
    tensorflow::random::SimplePhilox rng(&philox);
    const int64_t total_weight = tree->TotalWeight();
    const int64_t num_tries =
        DrawCandidates(tree, total_weight, unique_, &rng, &rest_rng,
                       num_sampled_, out.sampled);
    FillExpectedCounts(*tree, total_weight, num_sampled_, num_tries,
                       out.sampled, num_sampled_, out.sampled_expected);
    LearnTrueClasses(tree, total_weight, num_sampled_, num_tries,
                     out.true_classes, out.num_true_classes, out.true_expected);
  }

  int64_t num_true_ = 0;
  int64_t num_sampled_ = 0;
  bool unique_ = false;
  int64_t range_max_ = 0;
  int64_t seed_ = 0;
  int64_t seed2_ = 0;
};

// TfSampling>LearnedUnigramCandidateSampler: the counts live in the kernel,
// one set per op instance, as in TensorFlow.
class LearnedUnigramCandidateSamplerOp : public SamplerKernelBase {
 public:
  explicit LearnedUnigramCandidateSamplerOp(OpKernelConstruction* context)
      : SamplerKernelBase(context), shape_(range_max_) {
    std::string storage;
    OP_REQUIRES_OK(context, context->GetAttr("storage", &storage));
    const bool dense = storage == "dense" ||
                       (storage == "auto" && range_max_ <= kMaxDenseRange);
    if (dense) {
      dense_ = std::make_unique<OwnedFlatStore>(shape_);
      OP_REQUIRES(context, dense_->ok(),
                  absl::ResourceExhaustedError(absl::StrCat(
                      "cannot allocate dense counts for range_max=", range_max_,
                      "; use storage='sparse'")));
    } else {
      sparse_ = std::make_unique<SparseStore>(shape_);
    }
    generator_.Init(seed_, seed2_);
  }

  void Compute(OpKernelContext* context) override {
    Outputs out;
    OP_REQUIRES_OK(context, Prepare(context, 0, &out));
    // One exclusive lock for sampling and learning: concurrent calls of this
    // kernel see each other's updates whole, never half applied.
    absl::MutexLock lock(&mu_);
    if (dense_) {
      Run(CountTree<OwnedFlatStore>(shape_, dense_.get()), context, out);
    } else {
      Run(CountTree<SparseStore>(shape_, sparse_.get()), context, out);
    }
  }

 private:
  template <typename Store>
  void Run(CountTree<Store> tree, OpKernelContext* context,
           const Outputs& out) {
    OP_REQUIRES_OK(context, CheckRoom(tree.TotalWeight(), out));
    SampleThenLearn(&tree, generator_.ReserveSamples128(SamplesPerCall()), out);
  }

  const TreeShape shape_;
  absl::Mutex mu_;
  tensorflow::GuardedPhiloxRandom generator_;
  std::unique_ptr<OwnedFlatStore> dense_;
  std::unique_ptr<SparseStore> sparse_;
};

// TfSampling>LearnedUnigramSampleAndUpdate: the counts, and the position in
// the random stream, live in resource variables that the caller owns (and
// checkpoints).
class LearnedUnigramSampleAndUpdateOp : public SamplerKernelBase {
 public:
  explicit LearnedUnigramSampleAndUpdateOp(OpKernelConstruction* context)
      : SamplerKernelBase(context), shape_(range_max_) {}

  void Compute(OpKernelContext* context) override {
    tensorflow::core::RefCountPtr<tensorflow::Var> tree_var;
    OP_REQUIRES_OK(context, LookupResource(context, HandleFromInput(context, 0),
                                           &tree_var));
    tensorflow::core::RefCountPtr<tensorflow::Var> offset_var;
    OP_REQUIRES_OK(context, LookupResource(context, HandleFromInput(context, 1),
                                           &offset_var));
    OP_REQUIRES(context, tree_var.get() != offset_var.get(),
                absl::InvalidArgumentError(
                    "tree and offset must be two different variables"));
    Outputs out;
    OP_REQUIRES_OK(context, Prepare(context, 2, &out));

    // Always tree first, then offset: no lock-order cycle between calls.
    tensorflow::mutex_lock tree_lock(*tree_var->mu());
    tensorflow::mutex_lock offset_lock(*offset_var->mu());
    OP_REQUIRES(context, tree_var->is_initialized && offset_var->is_initialized,
                absl::FailedPreconditionError(
                    "the learned-unigram state variables are not initialized"));
    Tensor* state = tree_var->tensor();
    OP_REQUIRES(
        context,
        state->dtype() == tensorflow::DT_INT64 && state->dims() == 1 &&
            state->dim_size(0) == shape_.flat_size(),
        absl::InvalidArgumentError(absl::StrCat(
            "tree must be an int64 variable of shape [", shape_.flat_size(),
            "] (the count tree of range_max=", range_max_, "), got ",
            tensorflow::DataTypeString(state->dtype()), " with shape ",
            state->shape().DebugString())));
    OP_REQUIRES(context,
                FlatTreeFitsRange(shape_, state->flat<int64_t>().data()),
                TreeMismatch(shape_));
    FlatStore store(shape_, state->flat<int64_t>().data());
    OP_REQUIRES_OK(
        context,
        CheckRoom(CountTree<FlatStore>(shape_, &store).TotalWeight(), out));
    Tensor* offset = offset_var->tensor();
    OP_REQUIRES(context,
                offset->dtype() == tensorflow::DT_INT64 && offset->dims() == 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "offset must be an int64 scalar variable, got ",
                    tensorflow::DataTypeString(offset->dtype()), " with shape ",
                    offset->shape().DebugString())));
    // Copy on write: if someone still holds a tensor aliasing the tree's
    // buffer (a pending read), give the variable a fresh buffer first, as
    // TensorFlow's own variable updates do. Otherwise update in place.
    if (!state->RefCountIsOne()) {
      Tensor copy;
      OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_INT64,
                                                     state->shape(), &copy));
      std::memcpy(copy.flat<int64_t>().data(), state->flat<int64_t>().data(),
                  sizeof(int64_t) * shape_.flat_size());
      *state = copy;
    }
    const int64_t position = offset->scalar<int64_t>()();
    tensorflow::random::PhiloxRandom philox(static_cast<uint64_t>(seed_),
                                            static_cast<uint64_t>(seed2_));
    philox.Skip(static_cast<uint64_t>(position));
    // The copy above may have moved the buffer.
    store = FlatStore(shape_, state->flat<int64_t>().data());
    CountTree<FlatStore> tree(shape_, &store);
    SampleThenLearn(&tree, philox, out);
    // The offset is a scalar: always write a new buffer (never alias).
    Tensor next;
    OP_REQUIRES_OK(context, context->allocate_temp(tensorflow::DT_INT64,
                                                   TensorShape({}), &next));
    // Wraps around like the uint64 position Skip reads (no signed overflow).
    next.scalar<int64_t>()() =
        static_cast<int64_t>(static_cast<uint64_t>(position) +
                             static_cast<uint64_t>(SamplesPerCall()));
    *offset = next;
  }

 private:
  const TreeShape shape_;
};

// Count tree [flat size] -> per-class counts [range_max].
class TreeToCountsOp : public OpKernel {
 public:
  explicit TreeToCountsOp(OpKernelConstruction* context) : OpKernel(context) {
    int64_t range_max = 0;
    OP_REQUIRES_OK(context, context->GetAttr("range_max", &range_max));
    shape_ = std::make_unique<TreeShape>(range_max);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& tree = context->input(0);
    OP_REQUIRES(context,
                tree.dims() == 1 && tree.dim_size(0) == shape_->flat_size(),
                absl::InvalidArgumentError(absl::StrCat(
                    "tree must be a vector [", shape_->flat_size(),
                    "] (the count tree of range_max=", shape_->range(),
                    "), got shape ", tree.shape().DebugString())));
    OP_REQUIRES(context,
                FlatTreeFitsRange(*shape_, tree.flat<int64_t>().data()),
                TreeMismatch(*shape_));
    Tensor* counts = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({shape_->range()}), &counts));
    FlatTreeToCounts(*shape_, tree.flat<int64_t>().data(),
                     counts->flat<int64_t>().data());
  }

 private:
  std::unique_ptr<TreeShape> shape_;
};

// Per-class counts [range_max] -> count tree [flat size] (the inverse of
// TreeToCountsOp).
class CountsToTreeOp : public OpKernel {
 public:
  explicit CountsToTreeOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("range_max", &range_max_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& counts = context->input(0);
    OP_REQUIRES(context, counts.dims() == 1 && counts.dim_size(0) >= 1,
                absl::InvalidArgumentError(absl::StrCat(
                    "counts must be a non-empty vector [range_max], got shape ",
                    counts.shape().DebugString())));
    const int64_t n = counts.dim_size(0);
    OP_REQUIRES(context, range_max_ == 0 || n == range_max_,
                absl::InvalidArgumentError(absl::StrCat(
                    "counts must have shape [range_max] = [", range_max_,
                    "], got shape ", counts.shape().DebugString())));
    const int64_t* in = counts.flat<int64_t>().data();
    // The sampler's total weight n + sum(counts) must fit in int64.
    int64_t room = INT64_MAX - n;
    for (int64_t i = 0; i < n; ++i) {
      OP_REQUIRES(context, in[i] >= 0,
                  absl::InvalidArgumentError(absl::StrCat(
                      "counts must be >= 0, got counts[", i, "] = ", in[i])));
      OP_REQUIRES(context, in[i] <= room,
                  absl::InvalidArgumentError(absl::StrCat(
                      "counts must sum to at most 2^63 - 1 - range_max = ",
                      INT64_MAX - n,
                      " (the sampler's total weight is range_max + "
                      "sum(counts)); the sum passes it at counts[",
                      i, "] = ", in[i])));
      room -= in[i];
    }
    const TreeShape shape(n);
    Tensor* tree = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({shape.flat_size()}), &tree));
    CountsToFlatTree(shape, in, tree->flat<int64_t>().data());
  }

 private:
  int64_t range_max_ = 0;
};

REGISTER_KERNEL_BUILDER(
    Name("TfSampling>LearnedUnigramCandidateSampler").Device(DEVICE_CPU),
    LearnedUnigramCandidateSamplerOp);
REGISTER_KERNEL_BUILDER(
    Name("TfSampling>LearnedUnigramSampleAndUpdate").Device(DEVICE_CPU),
    LearnedUnigramSampleAndUpdateOp);
REGISTER_KERNEL_BUILDER(
    Name("TfSampling>LearnedUnigramTreeToCounts").Device(DEVICE_CPU),
    TreeToCountsOp);
REGISTER_KERNEL_BUILDER(
    Name("TfSampling>LearnedUnigramCountsToTree").Device(DEVICE_CPU),
    CountsToTreeOp);

}  // namespace
}  // namespace tf_sampling
