// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// One call of the learned-unigram sampler on a CountTree: the random-integer
// and expected-count rules of TensorFlow's own sampler (so that, seed for
// seed, the draws equal tf.random's), drawing with or without replacement,
// and learning the true classes.

#ifndef TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_CANDIDATE_DRAWS_H_
#define TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_CANDIDATE_DRAWS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "custom_ops/cc/kernels/count_tree.h"
#include "tensorflow/core/lib/random/simple_philox.h"

namespace tf_sampling {

// Uniform integers in [0, n), n >= 1. For n < 2^32 this is exactly the
// rejection rule of TensorFlow's WeightedPicker (the same 32-bit draws give the
// same result); beyond, the same rule on 64-bit draws. The constants are
// computed once: the rejection threshold, and for n < 2^32 the remainder by
// multiplication (Lemire's fastmod: exact for every 32-bit dividend and
// divisor).
class UniformBelowN {
 public:
  explicit UniformBelowN(uint64_t n) : n_(n) {
    small_ = n <= 0xFFFFFFFFull;
    pow2_ = (n & (n - 1)) == 0;
    if (small_) {
      const uint32_t n32 = static_cast<uint32_t>(n);
      reject_below_ = pow2_ ? 0 : (0xFFFFFFFFu % n32) + 1;
      magic_ = ~uint64_t{0} / n32 + 1;
    } else {
      reject_below_ = pow2_ ? 0 : (~uint64_t{0} % n) + 1;
    }
  }

  uint64_t operator()(tensorflow::random::SimplePhilox* rng) const {
    if (small_) {
      if (pow2_) return rng->Rand32() & (n_ - 1);
      uint32_t x;
      do {
        x = rng->Rand32();
      } while (x < reject_below_);
      const uint64_t low = magic_ * x;
      return static_cast<uint64_t>((static_cast<unsigned __int128>(low) * n_) >>
                                   64);
    }
    if (pow2_) return rng->Rand64() & (n_ - 1);
    uint64_t x;
    do {
      x = rng->Rand64();
    } while (x < reject_below_);
    return x % n_;
  }

 private:
  uint64_t n_;
  uint64_t reject_below_ = 0;
  uint64_t magic_ = 0;
  bool small_ = false;
  bool pow2_ = false;
};

// Expected number of times a class of probability p appears in a sample of
// `num_sampled` candidates drawn with `num_tries` draws: p * num_sampled when
// every draw was kept (always so for unique=False), otherwise the probability
// 1 - (1 - p)^num_tries that one of the tries hit it. Float arithmetic, as in
// TensorFlow's range_sampler.cc, so the values match it bit for bit.
inline float ExpectedCount(float p, int64_t num_sampled, int64_t num_tries) {
  if (num_tries == num_sampled) return p * static_cast<float>(num_sampled);
  return -std::expm1(static_cast<float>(num_tries) * std::log1p(-p));
}

// Classes drawn so far in one call: a bitmap where clearing it costs no more
// than the draws (range <= 64 * (num_sampled + 1024)), else a hash set.
class SeenSet {
 public:
  SeenSet(int64_t range, int64_t num_sampled) : map_(1) {
    if (range <= 64 * (num_sampled + 1024)) {
      bits_.assign(static_cast<size_t>((range + 63) / 64), 0);
    } else {
      map_.Reset(num_sampled);
    }
  }

  // Adds c; returns false if it was already there.
  bool Insert(int64_t c) {
    if (bits_.empty()) return map_.Insert(c);
    uint64_t& word = bits_[static_cast<size_t>(c >> 6)];
    const uint64_t bit = uint64_t{1} << (c & 63);
    const bool fresh = (word & bit) == 0;
    word |= bit;
    return fresh;
  }

 private:
  std::vector<uint64_t> bits_;
  Int64HashMap map_;
};

// Unique draws past which rejection stops. TensorFlow reserves 2048 32-bit
// random values per sampled class and call, and a draw takes one or two (two
// above 2^32 total weight): within the budget, the draws are TensorFlow's and
// stay inside the call's reserved stream, so calls do not replay each other's
// values (TensorFlow's own sampler does, once a call draws past it).
inline int64_t RejectionBudget(int64_t num_sampled) {
  return 1024 * num_sampled;
}

// The number of draws rejection sampling makes up to and including its first
// unpicked class, when the picked classes weigh `picked_weight` of
// `total_weight`: geometric, with success probability 1 - picked / total.
// Saturates at 2^62 (only ever used as a float exponent).
inline int64_t RejectionTries(tensorflow::random::SimplePhilox* rng,
                              int64_t picked_weight, int64_t total_weight) {
  if (picked_weight == 0) return 1;
  const double total = static_cast<double>(total_weight);
  const double picked = static_cast<double>(picked_weight);
  // log(picked / total), accurate at both ends.
  const double log_reject = picked < 0.5 * total
                                ? std::log(picked / total)
                                : std::log1p(-(total - picked) / total);
  const double u = 1.0 - rng->RandDouble();  // (0, 1]
  const double misses = std::floor(std::log(u) / log_reject);
  constexpr double kMax = 4.0e18;
  return misses >= kMax ? static_cast<int64_t>(kMax)
                        : 1 + static_cast<int64_t>(misses);
}

// Completes a unique sample whose rejection sampling ran out of budget: takes
// the `picked` classes' weights out of `tree`, draws each further class from
// the unpicked ones, and restores the tree. The law of the sample and of the
// number of draws is that of going on rejecting: given the picked classes,
// the next new class is proportional to weight among the unpicked ones, and
// the draws until it are geometric (RejectionTries), independent of which it
// is. Costs O(num_sampled * log(range)) whatever the weights. `rng` should be
// independent of the stream the rejections used. Returns the total number of
// draws.
template <typename Store>
int64_t DrawUnpicked(CountTree<Store>* tree, int64_t total_weight,
                     tensorflow::random::SimplePhilox* rng, int64_t num_sampled,
                     int64_t picked, int64_t num_tries, int64_t* out) {
  std::vector<int64_t> weights(static_cast<size_t>(num_sampled));
  int64_t picked_weight = 0;
  auto take = [&](int64_t i) {
    weights[i] = tree->Weight(out[i]);
    picked_weight += weights[i];
    tree->Add(out[i], -weights[i]);
  };
  for (int64_t i = 0; i < picked; ++i) take(i);
  for (; picked < num_sampled; ++picked) {
    const int64_t tries = RejectionTries(rng, picked_weight, total_weight);
    num_tries = tries > INT64_MAX - num_tries ? INT64_MAX : num_tries + tries;
    const UniformBelowN uniform(
        static_cast<uint64_t>(total_weight - picked_weight));
    const int64_t r = static_cast<int64_t>(uniform(rng));
    tree->FindGroup(&r, 1, out + picked);
    take(picked);
  }
  for (int64_t i = 0; i < num_sampled; ++i) tree->Add(out[i], weights[i]);
  return num_tries;
}

// Draws `num_sampled` candidates from `tree` into `out`: independently, or for
// `unique` by rejecting repeats (for at most about RejectionBudget draws, then
// by DrawUnpicked with `rest_rng`; the tree is the same on return). Returns
// the number of draws made.
template <typename Store>
int64_t DrawCandidates(CountTree<Store>* tree, int64_t total_weight,
                       bool unique, tensorflow::random::SimplePhilox* rng,
                       tensorflow::random::SimplePhilox* rest_rng,
                       int64_t num_sampled, int64_t* out) {
  // Draws are made in groups (see CountTree::FindGroup), in stream order.
  // With `unique`, the last group may draw a few values past the last one
  // needed; they are ignored, and since every call starts at its own reserved
  // stream position, the results are those of drawing one at a time.
  constexpr int kGroup = CountTree<Store>::kGroup;
  const UniformBelowN uniform(static_cast<uint64_t>(total_weight));
  int64_t r[kGroup];
  int64_t found[kGroup];
  if (!unique) {
    for (int64_t i = 0; i < num_sampled; i += kGroup) {
      const int n =
          static_cast<int>(std::min<int64_t>(kGroup, num_sampled - i));
      for (int j = 0; j < n; ++j) {
        r[j] = static_cast<int64_t>(uniform(rng));
      }
      tree->FindGroup(r, n, out + i);
    }
    return num_sampled;
  }
  SeenSet seen(tree->range(), num_sampled);
  int64_t num_tries = 0;
  int64_t picked = 0;
  const int64_t budget = RejectionBudget(num_sampled);
  while (picked < num_sampled && num_tries < budget) {
    // No more draws than could still be needed if all were new.
    const int n =
        static_cast<int>(std::min<int64_t>(kGroup, num_sampled - picked));
    for (int j = 0; j < n; ++j) {
      r[j] = static_cast<int64_t>(uniform(rng));
    }
    tree->FindGroup(r, n, found);
    for (int j = 0; j < n && picked < num_sampled; ++j) {
      ++num_tries;
      if (seen.Insert(found[j])) out[picked++] = found[j];
    }
  }
  if (picked < num_sampled) {
    num_tries = DrawUnpicked(tree, total_weight, rest_rng, num_sampled, picked,
                             num_tries, out);
  }
  return num_tries;
}

// Fills the expected counts of the `num_values` classes `values` under `tree`.
template <typename Store>
void FillExpectedCounts(const CountTree<Store>& tree, int64_t total_weight,
                        int64_t num_sampled, int64_t num_tries,
                        const int64_t* values, int64_t num_values, float* out) {
  constexpr int64_t kAhead = 16;
  for (int64_t i = 0; i < std::min(kAhead, num_values); ++i) {
    tree.PrefetchClass(values[i]);
  }
  for (int64_t i = 0; i < num_values; ++i) {
    if (i + kAhead < num_values) tree.PrefetchClass(values[i + kAhead]);
    out[i] = static_cast<float>(tree.Weight(values[i]));
  }
  // Apart from the reads, so that the divisions vectorize.
  const float total = static_cast<float>(total_weight);
  if (num_tries == num_sampled) {
    const float scale = static_cast<float>(num_sampled);
    for (int64_t i = 0; i < num_values; ++i) out[i] = out[i] / total * scale;
  } else {
    for (int64_t i = 0; i < num_values; ++i) {
      out[i] = ExpectedCount(out[i] / total, num_sampled, num_tries);
    }
  }
}

// Fills the expected counts of the `n` true classes `classes` (from the
// weights before this call's counting, as TensorFlow does), then adds them to
// `tree`.
template <typename Store>
void LearnTrueClasses(CountTree<Store>* tree, int64_t total_weight,
                      int64_t num_sampled, int64_t num_tries,
                      const int64_t* classes, int64_t n, float* expected) {
  FillExpectedCounts(*tree, total_weight, num_sampled, num_tries, classes, n,
                     expected);
  tree->AddEach(classes, n);
}

}  // namespace tf_sampling

#endif  // TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_CANDIDATE_DRAWS_H_
