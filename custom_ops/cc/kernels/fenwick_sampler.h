// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// Building blocks of the learned-unigram candidate sampler:
//
//  * A Fenwick (binary indexed) tree over the classes [0, range) whose class
//    weights are 1 + (number of times the class was seen). The base weight of
//    1 per class is implicit: node i (1-based) covers lowbit(i) classes, so its
//    base sum is lowbit(i) and only the increments are stored. An untouched
//    tree therefore costs no memory writes, and sampling, point queries and
//    updates are O(log range).
//  * Three stores for those increments: a lazily zeroed dense array, a sparse
//    open-addressing hash map (for ranges far beyond what fits in memory), and
//    a view on a TensorFlow tensor (the Keras-owned state).
//  * The random-integer and expected-count rules of TensorFlow's own sampler,
//    so that, seed for seed, the draws equal tf.random's.

#ifndef TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_FENWICK_SAMPLER_H_
#define TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_FENWICK_SAMPLER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "tensorflow/core/lib/random/simple_philox.h"

namespace tf_sampling {

// Lowest set bit of i; i > 0.
inline int64_t LowBit(int64_t i) { return i & -i; }

// Largest power of two that is <= n; n >= 1.
inline int64_t TopPowerOfTwo(int64_t n) {
  return int64_t{1} << (63 - __builtin_clzll(static_cast<uint64_t>(n)));
}

// Open-addressing (linear probing) hash map from non-negative int64 keys to
// int64 values. Missing keys read as 0. Not thread-safe.
class Int64HashMap {
 public:
  explicit Int64HashMap(int64_t expected_size = 8) { Reset(expected_size); }

  // Forgets every key and sizes the table for `expected_size` keys.
  void Reset(int64_t expected_size) {
    int shift = 64 - 3;  // Start at 8 slots.
    while ((int64_t{1} << (64 - shift)) < 2 * expected_size + 2) --shift;
    shift_ = shift;
    slots_.assign(size_t{1} << (64 - shift_), Slot{kEmpty, 0});
    mask_ = slots_.size() - 1;
    size_ = 0;
  }

  int64_t size() const { return size_; }

  int64_t Get(int64_t key) const {
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return slot.value;
      if (slot.key == kEmpty) return 0;
    }
  }

  // Hints the CPU to fetch the slot where a lookup of `key` starts.
  void Prefetch(int64_t key) const { __builtin_prefetch(&slots_[Home(key)]); }

  // Adds `delta` to the value of `key` (inserting it at 0 first if absent).
  void Add(int64_t key, int64_t delta) { *FindOrInsert(key, nullptr) += delta; }

  // Inserts `key`; returns false if it was already present.
  bool Insert(int64_t key) {
    bool inserted = false;
    FindOrInsert(key, &inserted);
    return inserted;
  }

  // Calls fn(key, value) for every entry, in table order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Slot& slot : slots_) {
      if (slot.key != kEmpty) fn(slot.key, slot.value);
    }
  }

 private:
  static constexpr int64_t kEmpty = -1;
  struct Slot {
    int64_t key;
    int64_t value;
  };

  // Fibonacci hashing: the top bits of key * 2^64/phi.
  size_t Home(int64_t key) const {
    return static_cast<size_t>(
        (static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  int64_t* FindOrInsert(int64_t key, bool* inserted) {
    if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) Grow();
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == key) return &slot.value;
      if (slot.key == kEmpty) {
        slot.key = key;
        slot.value = 0;
        ++size_;
        if (inserted != nullptr) *inserted = true;
        return &slot.value;
      }
    }
  }

  void Grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    --shift_;
    slots_.assign(old.size() * 2, Slot{kEmpty, 0});
    mask_ = slots_.size() - 1;
    for (const Slot& slot : old) {
      if (slot.key == kEmpty) continue;
      size_t i = Home(slot.key);
      while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
      slots_[i] = slot;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 0;
  int64_t size_ = 0;
};

// Increments of Fenwick nodes 1..n in a dense array, zeroed once at
// construction (the only O(n) work; TensorFlow's own picker does the same).
class DenseIncrements {
 public:
  explicit DenseIncrements(int64_t n)
      : data_(new (std::nothrow) int64_t[n + 1]()) {}

  bool ok() const { return data_ != nullptr; }
  int64_t Get(int64_t node) const { return data_[node]; }
  void Add(int64_t node, int64_t delta) { data_[node] += delta; }
  void Prefetch(int64_t node) const { __builtin_prefetch(&data_[node]); }

 private:
  std::unique_ptr<int64_t[]> data_;
};

// Increments of Fenwick nodes in a hash map: memory grows with the number of
// touched nodes, not with the range.
class SparseIncrements {
 public:
  int64_t Get(int64_t node) const { return map_.Get(node); }
  void Add(int64_t node, int64_t delta) { map_.Add(node, delta); }
  void Prefetch(int64_t node) const { map_.Prefetch(node); }

 private:
  Int64HashMap map_;
};

// Increments of Fenwick nodes held in a tensor buffer: node i at data[i - 1].
class BufferIncrements {
 public:
  explicit BufferIncrements(int64_t* data) : data_(data) {}
  int64_t Get(int64_t node) const { return data_[node - 1]; }
  void Add(int64_t node, int64_t delta) { data_[node - 1] += delta; }
  void Prefetch(int64_t node) const { __builtin_prefetch(&data_[node - 1]); }

 private:
  int64_t* data_;
};

// Fenwick tree over the classes [0, range) with weight(c) = 1 + count(c),
// reading and writing node increments through `Store`.
template <typename Store>
class UnigramTree {
 public:
  UnigramTree(int64_t range, Store* store)
      : range_(range), top_step_(TopPowerOfTwo(range)), store_(store) {}

  int64_t range() const { return range_; }

  // Sum of the weights of classes [0, n); O(log range).
  int64_t PrefixWeight(int64_t n) const {
    int64_t sum = n;
    for (int64_t node = n; node > 0; node -= LowBit(node)) {
      sum += store_->Get(node);
    }
    return sum;
  }

  int64_t TotalWeight() const { return PrefixWeight(range_); }

  // Number of times class c was counted; O(log range), O(1) on average.
  int64_t Count(int64_t c) const {
    const int64_t node = c + 1;
    int64_t count = store_->Get(node);
    const int64_t stop = node - LowBit(node);
    for (int64_t child = node - 1; child != stop; child -= LowBit(child)) {
      count -= store_->Get(child);
    }
    return count;
  }

  int64_t Weight(int64_t c) const { return 1 + Count(c); }

  // The class c with PrefixWeight(c) <= r < PrefixWeight(c + 1), for
  // 0 <= r < TotalWeight(); O(log range).
  int64_t Find(int64_t r) const {
    int64_t pos = 0;
    for (int64_t step = top_step_; step > 0; step >>= 1) {
      const int64_t node = pos + step;
      if (node > range_) continue;
      // pos is a multiple of 2 * step, so lowbit(node) == step: the node
      // covers `step` classes of base weight 1 each.
      const int64_t weight = step + store_->Get(node);
      if (weight <= r) {
        pos = node;
        r -= weight;
      }
    }
    return pos;
  }

  // Find() for n <= kGroup values at once: the n descents advance level by
  // level in lockstep and each prefetches its next node, so their cache
  // misses overlap instead of queueing (ranges far beyond the CPU caches).
  static constexpr int kGroup = 16;
  void FindGroup(const int64_t* r, int n, int64_t* out) const {
    int64_t pos[kGroup];
    int64_t rest[kGroup];
    for (int j = 0; j < n; ++j) {
      pos[j] = 0;
      rest[j] = r[j];
    }
    for (int64_t step = top_step_; step > 0; step >>= 1) {
      const int64_t half = step >> 1;
      for (int j = 0; j < n; ++j) {
        const int64_t node = pos[j] + step;
        if (node <= range_) {
          const int64_t weight = step + store_->Get(node);
          const bool take = weight <= rest[j];  // Unpredictable: no branch.
          pos[j] = take ? node : pos[j];
          rest[j] -= take ? weight : 0;
        }
        if (half > 0 && pos[j] + half <= range_)
          store_->Prefetch(pos[j] + half);
      }
    }
    for (int j = 0; j < n; ++j) out[j] = pos[j];
  }

  // Adds `delta` occurrences to class c; O(log range). Calls
  // visit(node, delta) for each node changed.
  template <typename Visit>
  void Update(int64_t c, int64_t delta, Visit visit) {
    for (int64_t node = c + 1; node <= range_; node += LowBit(node)) {
      store_->Add(node, delta);
      visit(node, delta);
    }
  }
  void Update(int64_t c, int64_t delta) {
    Update(c, delta, [](int64_t, int64_t) {});
  }

 private:
  int64_t range_;
  int64_t top_step_;
  Store* store_;
};

// A uniform integer in [0, n), n >= 1. For n < 2^32 this is exactly the
// rejection rule of TensorFlow's WeightedPicker (the same 32-bit draws give the
// same result); beyond, the same rule on 64-bit draws.
inline uint64_t UniformBelow(tensorflow::random::SimplePhilox* rng,
                             uint64_t n) {
  if (n <= 0xFFFFFFFFull) {
    const uint32_t n32 = static_cast<uint32_t>(n);
    if ((n32 & (n32 - 1)) == 0) return rng->Rand32() & (n32 - 1);
    const uint32_t reject_below = (0xFFFFFFFFu % n32) + 1;
    uint32_t x;
    do {
      x = rng->Rand32();
    } while (x < reject_below);
    return x % n32;
  }
  if ((n & (n - 1)) == 0) return rng->Rand64() & (n - 1);
  const uint64_t reject_below = (~uint64_t{0} % n) + 1;
  uint64_t x;
  do {
    x = rng->Rand64();
  } while (x < reject_below);
  return x % n;
}

// Expected number of times a class of probability p appears in a sample of
// `num_sampled` candidates drawn with `num_tries` draws: p * num_sampled when
// every draw was kept (always so for unique=False), otherwise the probability
// 1 - (1 - p)^num_tries that one of the tries hit it. Float arithmetic, as in
// TensorFlow's range_sampler.cc, so the values match it bit for bit.
inline float ExpectedCount(float p, int64_t num_sampled, int64_t num_tries) {
  if (num_tries == num_sampled) return p * static_cast<float>(num_sampled);
  return -std::expm1(static_cast<float>(num_tries) * std::log1p(-p));
}

// Ranges up to this size (a tree of <= 1 MiB) are sampled one draw at a time;
// larger ones in groups of UnigramTree::kGroup interleaved descents.
constexpr int64_t kScalarFindMaxRange = int64_t{1} << 17;

// Draws `num_sampled` candidates from `tree` into `out`: independently, or for
// `unique` by rejecting repeats. Returns the number of draws made.
template <typename Tree>
int64_t DrawCandidates(const Tree& tree, int64_t total_weight, bool unique,
                       tensorflow::random::SimplePhilox* rng,
                       int64_t num_sampled, int64_t* out) {
  // Draws are made in groups (see UnigramTree::FindGroup), in stream order.
  // With `unique`, the last group may draw a few values past the last one
  // needed; they are ignored, and since every call starts at its own reserved
  // stream position, the results are those of drawing one at a time.
  constexpr int kGroup = Tree::kGroup;
  const uint64_t total = static_cast<uint64_t>(total_weight);
  int64_t r[kGroup];
  int64_t found[kGroup];
  if (tree.range() <= kScalarFindMaxRange) {
    // The tree fits in the CPU caches: one draw at a time, whose branches
    // the CPU predicts well when the learned distribution is skewed.
    if (!unique) {
      for (int64_t i = 0; i < num_sampled; ++i) {
        out[i] = tree.Find(static_cast<int64_t>(UniformBelow(rng, total)));
      }
      return num_sampled;
    }
    Int64HashMap seen(num_sampled);
    int64_t num_tries = 0;
    for (int64_t picked = 0; picked < num_sampled;) {
      ++num_tries;
      const int64_t c =
          tree.Find(static_cast<int64_t>(UniformBelow(rng, total)));
      if (seen.Insert(c)) out[picked++] = c;
    }
    return num_tries;
  }
  if (!unique) {
    for (int64_t i = 0; i < num_sampled; i += kGroup) {
      const int n =
          static_cast<int>(std::min<int64_t>(kGroup, num_sampled - i));
      for (int j = 0; j < n; ++j) {
        r[j] = static_cast<int64_t>(UniformBelow(rng, total));
      }
      tree.FindGroup(r, n, out + i);
    }
    return num_sampled;
  }
  Int64HashMap seen(num_sampled);
  int64_t num_tries = 0;
  int64_t picked = 0;
  while (picked < num_sampled) {
    // No more draws than could still be needed if all were new.
    const int n =
        static_cast<int>(std::min<int64_t>(kGroup, num_sampled - picked));
    for (int j = 0; j < n; ++j) {
      r[j] = static_cast<int64_t>(UniformBelow(rng, total));
    }
    tree.FindGroup(r, n, found);
    for (int j = 0; j < n && picked < num_sampled; ++j) {
      ++num_tries;
      if (seen.Insert(found[j])) out[picked++] = found[j];
    }
  }
  return num_tries;
}

// Fills the expected counts of `num_values` classes `values` under `tree`.
template <typename Tree>
void FillExpectedCounts(const Tree& tree, int64_t total_weight,
                        int64_t num_sampled, int64_t num_tries,
                        const int64_t* values, int64_t num_values, float* out) {
  const float total = static_cast<float>(total_weight);
  for (int64_t i = 0; i < num_values; ++i) {
    const float p = static_cast<float>(tree.Weight(values[i])) / total;
    out[i] = ExpectedCount(p, num_sampled, num_tries);
  }
}

}  // namespace tf_sampling

#endif  // TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_FENWICK_SAMPLER_H_
