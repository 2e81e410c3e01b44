// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// CPU kernel of TfSampling>ResourceSparseApplyLazyAdam, declared in
// ../ops/lazy_adam_ops.cc: the whole sparse LazyAdam step of one variable
// (deduplication, both moments, weight decay and the update) in one pass over
// the touched rows, where the Python version takes ~30 row-sized ops.
//
// The arithmetic is the Python version's, operation for operation (the same
// summation order of repeated rows, no fused multiply-adds: the build targets
// SSE4.2), so both give the same bits.

// TensorFlow's variable helpers copy buffers on the CPU thread pool.
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tf_sampling {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using CPUDevice = Eigen::ThreadPoolDevice;

// Inputs after the three variables.
enum Input {
  kAlpha = 3,
  kOneMinusBeta1,
  kOneMinusBeta2,
  kEpsilon,
  kLearningRate,
  kWeightDecay,
  kGrad,
  kIndices,
};

template <typename T>
struct Scalars {
  T alpha, one_minus_beta_1, one_minus_beta_2, epsilon, learning_rate,
      weight_decay;
};

// The rows of `indices` grouped by index: `order` lists the positions sorted
// by index (positions of one index ascending), group k is
// order[starts[k] .. starts[k + 1]).
template <typename Index>
void GroupByIndex(const Index* indices, int64_t n, std::vector<int64_t>* order,
                  std::vector<int64_t>* starts) {
  order->resize(n);
  std::iota(order->begin(), order->end(), int64_t{0});
  std::stable_sort(
      order->begin(), order->end(),
      [indices](int64_t a, int64_t b) { return indices[a] < indices[b]; });
  starts->clear();
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || indices[(*order)[i]] != indices[(*order)[i - 1]]) {
      starts->push_back(i);
    }
  }
  starts->push_back(n);
}

// One group's update: `positions` are the rows of `grad` ([n, width]) that
// go to row `row` of var, m and v ([rows, width]); `g` and `s` are scratch
// rows of `width`.
template <typename T>
void UpdateRow(const Scalars<T>& c, bool per_lookup, bool decay,
               const int64_t* positions, int64_t count, int64_t row,
               int64_t width, const T* grad, T* var, T* m, T* v, T* g, T* s) {
  std::fill(g, g + width, T(0));
  std::fill(s, s + width, T(0));
  // Summed as unsorted_segment_sum does: in order of appearance, from zero.
  for (int64_t k = 0; k < count; ++k) {
    const T* x = grad + positions[k] * width;
    for (int64_t j = 0; j < width; ++j) g[j] = g[j] + x[j];
    if (per_lookup) {
      for (int64_t j = 0; j < width; ++j) s[j] = s[j] + x[j] * x[j];
    }
  }
  if (!per_lookup) {
    for (int64_t j = 0; j < width; ++j) s[j] = g[j] * g[j];
  }
  T* w_row = var + row * width;
  T* m_row = m + row * width;
  T* v_row = v + row * width;
  if (decay) {
    for (int64_t j = 0; j < width; ++j) {
      w_row[j] = w_row[j] - (w_row[j] * c.weight_decay) * c.learning_rate;
    }
  }
  for (int64_t j = 0; j < width; ++j) {
    const T m_new = m_row[j] + (g[j] - m_row[j]) * c.one_minus_beta_1;
    const T v_new = v_row[j] + (s[j] - v_row[j]) * c.one_minus_beta_2;
    m_row[j] = m_new;
    v_row[j] = v_new;
    w_row[j] = w_row[j] - (m_new * c.alpha) / (std::sqrt(v_new) + c.epsilon);
  }
}

template <typename T, typename Index>
class ResourceSparseApplyLazyAdamOp : public OpKernel {
 public:
  explicit ResourceSparseApplyLazyAdamOp(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context,
                   context->GetAttr("per_lookup_second_moment", &per_lookup_));
    OP_REQUIRES_OK(context,
                   context->GetAttr("use_weight_decay", &use_weight_decay_));
  }

  void Compute(OpKernelContext* context) override {
    Scalars<T> c;
    OP_REQUIRES_OK(context, Scalar(context, kAlpha, "alpha", &c.alpha));
    OP_REQUIRES_OK(context, Scalar(context, kOneMinusBeta1, "one_minus_beta_1",
                                   &c.one_minus_beta_1));
    OP_REQUIRES_OK(context, Scalar(context, kOneMinusBeta2, "one_minus_beta_2",
                                   &c.one_minus_beta_2));
    OP_REQUIRES_OK(context, Scalar(context, kEpsilon, "epsilon", &c.epsilon));
    OP_REQUIRES_OK(context, Scalar(context, kLearningRate, "learning_rate",
                                   &c.learning_rate));
    OP_REQUIRES_OK(context, Scalar(context, kWeightDecay, "weight_decay",
                                   &c.weight_decay));
    const Tensor& grad = context->input(kGrad);
    const Tensor& indices = context->input(kIndices);
    OP_REQUIRES(context, indices.dims() == 1,
                absl::InvalidArgumentError(
                    absl::StrCat("indices must be a vector, got shape ",
                                 indices.shape().DebugString())));
    OP_REQUIRES(context,
                grad.dims() >= 1 && grad.dim_size(0) == indices.dim_size(0),
                absl::InvalidArgumentError(absl::StrCat(
                    "grad must be [n, *row] for indices [n], got grad shape ",
                    grad.shape().DebugString(), " and indices shape ",
                    indices.shape().DebugString())));

    // Checked before anything below reads the buffers as T.
    OP_REQUIRES_OK(context, CheckVariable(context, 0, "var"));
    OP_REQUIRES_OK(context, CheckVariable(context, 1, "m"));
    OP_REQUIRES_OK(context, CheckVariable(context, 2, "v"));
    // As TensorFlow's sparse training ops: sparse access (reads copy from now
    // on, so the buffers can be written in place), all three locked in
    // address order.
    auto locks = tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        context, /*do_lock=*/true, /*sparse=*/true, {0, 1, 2});
    Tensor var, m, v;
    OP_REQUIRES_OK(context, Variable(context, 0, &var));
    OP_REQUIRES_OK(context, Variable(context, 1, &m));
    OP_REQUIRES_OK(context, Variable(context, 2, &v));
    OP_REQUIRES(context,
                var.data() != m.data() && var.data() != v.data() &&
                    m.data() != v.data(),
                absl::InvalidArgumentError(
                    "var, m and v must be three different variables"));
    OP_REQUIRES(context, var.dims() >= 1,
                absl::InvalidArgumentError(absl::StrCat(
                    "var must have at least one dimension, got shape ",
                    var.shape().DebugString())));
    OP_REQUIRES(context, m.shape() == var.shape() && v.shape() == var.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "m and v must have var's shape ", var.shape().DebugString(),
                    ", got ", m.shape().DebugString(), " and ",
                    v.shape().DebugString())));
    bool rows_match = grad.dims() == var.dims();
    for (int d = 1; rows_match && d < var.dims(); ++d) {
      rows_match = grad.dim_size(d) == var.dim_size(d);
    }
    OP_REQUIRES(context, rows_match,
                absl::InvalidArgumentError(absl::StrCat(
                    "grad rows must have var's row shape: var shape ",
                    var.shape().DebugString(), ", grad shape ",
                    grad.shape().DebugString())));

    const int64_t n = indices.dim_size(0);
    const int64_t rows = var.dim_size(0);
    const Index* ids = indices.flat<Index>().data();
    // Every index is checked before any row is written.
    for (int64_t i = 0; i < n; ++i) {
      OP_REQUIRES(
          context, ids[i] >= 0 && ids[i] < rows,
          absl::InvalidArgumentError(absl::StrCat(
              "indices[", i, "] = ", ids[i], " is not in [0, ", rows, ")")));
    }
    if (n == 0) return;

    std::vector<int64_t> order, starts;
    GroupByIndex(ids, n, &order, &starts);
    const int64_t groups = static_cast<int64_t>(starts.size()) - 1;
    const int64_t width = var.NumElements() / rows;
    const T* g_data = grad.flat<T>().data();
    T* var_data = var.flat<T>().data();
    T* m_data = m.flat<T>().data();
    T* v_data = v.flat<T>().data();
    const bool per_lookup = per_lookup_;
    const bool decay = use_weight_decay_;
    // Groups write disjoint rows, so they can run on the CPU threads.
    auto update = [&](int64_t first, int64_t last) {
      std::vector<T> g(width), s(width);
      for (int64_t k = first; k < last; ++k) {
        const int64_t* positions = order.data() + starts[k];
        UpdateRow(c, per_lookup, decay, positions, starts[k + 1] - starts[k],
                  static_cast<int64_t>(ids[positions[0]]), width, g_data,
                  var_data, m_data, v_data, g.data(), s.data());
      }
    };
    const auto* threads = context->device()->tensorflow_cpu_worker_threads();
    // Roughly the cycles of one group: a few passes over its rows.
    const int64_t cost = std::max<int64_t>(1, width * 8 * n / groups);
    tensorflow::Shard(threads->num_threads, threads->workers, groups, cost,
                      update);
  }

 private:
  static absl::Status Scalar(OpKernelContext* context, int input,
                             const char* name, T* out) {
    const Tensor& t = context->input(input);
    if (!tensorflow::TensorShapeUtils::IsScalar(t.shape())) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " must be a scalar, got shape ", t.shape().DebugString()));
    }
    *out = t.scalar<T>()();
    return absl::OkStatus();
  }

  // A variable's dtype and initialization are fixed once it is initialized.
  static absl::Status CheckVariable(OpKernelContext* context, int input,
                                    const char* name) {
    tensorflow::core::RefCountPtr<tensorflow::Var> resource;
    TF_RETURN_IF_ERROR(tensorflow::LookupResource(
        context, tensorflow::HandleFromInput(context, input), &resource));
    tensorflow::tf_shared_lock lock(*resource->mu());
    if (!resource->is_initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " is not initialized"));
    }
    const tensorflow::DataType dtype = resource->tensor()->dtype();
    if (dtype != tensorflow::DataTypeToEnum<T>::value) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " must be of dtype ",
          tensorflow::DataTypeString(tensorflow::DataTypeToEnum<T>::value),
          " (the dtype of grad and the scalars), got ",
          tensorflow::DataTypeString(dtype)));
    }
    return absl::OkStatus();
  }

  static absl::Status Variable(OpKernelContext* context, int input,
                               Tensor* out) {
    return tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
        context, input, /*lock_held=*/true, /*sparse=*/true, out);
  }

  bool per_lookup_ = false;
  bool use_weight_decay_ = false;
};

#define TF_SAMPLING_REGISTER_LAZY_ADAM(T, Index)                         \
  REGISTER_KERNEL_BUILDER(Name("TfSampling>ResourceSparseApplyLazyAdam") \
                              .Device(DEVICE_CPU)                        \
                              .TypeConstraint<T>("T")                    \
                              .TypeConstraint<Index>("Tindices"),        \
                          ResourceSparseApplyLazyAdamOp<T, Index>)

TF_SAMPLING_REGISTER_LAZY_ADAM(float, int32_t);
TF_SAMPLING_REGISTER_LAZY_ADAM(float, int64_t);
TF_SAMPLING_REGISTER_LAZY_ADAM(double, int32_t);
TF_SAMPLING_REGISTER_LAZY_ADAM(double, int64_t);

#undef TF_SAMPLING_REGISTER_LAZY_ADAM

}  // namespace
}  // namespace tf_sampling
