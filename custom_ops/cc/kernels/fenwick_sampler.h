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

#include <sys/mman.h>

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

  // The value of `key`, inserted at 0 if absent (then *inserted = true).
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
  explicit DenseIncrements(int64_t n) : data_(AllocateZeroed(n + 1)) {}

  bool ok() const { return data_ != nullptr; }
  int64_t Get(int64_t node) const { return data_[node]; }
  void Add(int64_t node, int64_t delta) { data_[node] += delta; }
  void Prefetch(int64_t node) const { __builtin_prefetch(&data_[node]); }

 private:
  struct Free {
    void operator()(int64_t* p) const { std::free(p); }
  };
  // Zeroed memory; beyond 2 MiB aligned to and advised into transparent huge
  // pages, so that random reads of a large tree miss the TLB less.
  static int64_t* AllocateZeroed(int64_t count) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = sizeof(int64_t) * static_cast<size_t>(count);
    if (bytes >= kHuge) {
      const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
      void* p = std::aligned_alloc(kHuge, rounded);
      if (p == nullptr) return nullptr;
      madvise(p, rounded, MADV_HUGEPAGE);
      std::memset(p, 0, bytes);
      return static_cast<int64_t*>(p);
    }
    return static_cast<int64_t*>(
        std::calloc(static_cast<size_t>(count), sizeof(int64_t)));
  }
  std::unique_ptr<int64_t[], Free> data_;
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
  const Store& store() const { return *store_; }

  // Hints the CPU to fetch the leaf node of class c (read by Count, Update).
  void PrefetchClass(int64_t c) const { store_->Prefetch(c + 1); }

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

// Interleaved Fenwick descents whose upper levels read a compact copy.
//
// A descent first visits the nodes whose index is a multiple of 2^shift;
// in the tree they lie one per cache line, spread over the whole array (for
// a tree beyond the L1 cache, a miss each). GroupFinder copies them, once per
// call, into a contiguous array (compact node j = tree node j << shift), so
// the upper levels of every descent run in a few kilobytes of L1-resident
// memory, and only the last `shift` levels, which lie in one or a few
// neighbouring cache lines, read the tree. Descents run kGroup at a time,
// level by level in lockstep and without branches, each prefetching its next
// tree node, so that their cache misses overlap. Results equal
// UnigramTree::Find's.
template <typename Store>
class GroupFinder {
 public:
  static constexpr int kGroup = 32;

  // Copies at most `max_top` >= 1 nodes: O(max_top).
  GroupFinder(const UnigramTree<Store>& tree, int64_t max_top) : tree_(tree) {
    const int64_t range = tree.range();
    while ((range >> shift_) > max_top) ++shift_;
    top_size_ = range >> shift_;
    top_step_ = TopPowerOfTwo(top_size_);
    top_.resize(top_size_);
    const Store& store = tree.store();
    constexpr int64_t kAhead = 16;
    for (int64_t j = 1; j <= top_size_; ++j) {
      if (j + kAhead <= top_size_) store.Prefetch((j + kAhead) << shift_);
      top_[j - 1] = store.Get(j << shift_);
    }
  }

  // out[j] = tree.Find(r[j]) for j < n <= kGroup.
  void FindGroup(const int64_t* r, int n, int64_t* out) const {
    int64_t pos[kGroup];
    int64_t rest[kGroup];
    for (int j = 0; j < n; ++j) {
      pos[j] = 0;
      rest[j] = r[j];
    }
    // Upper levels, in the compact copy: compact node pos + step (pos a
    // multiple of 2 * step) is tree node (pos + step) << shift, which covers
    // step << shift classes of base weight 1.
    const int64_t* top = top_.data();
    const int64_t top_size = top_size_;
    const int shift = shift_;
    for (int64_t step = top_step_; step > 0; step >>= 1) {
      const int64_t base = step << shift;
      for (int j = 0; j < n; ++j) {
        const int64_t node = pos[j] + step;
        const bool inside = node <= top_size;
        const int64_t weight = base + top[(inside ? node : top_size) - 1];
        // All-ones when the descent moves right; no branch.
        const int64_t take =
            -static_cast<int64_t>(inside & (weight <= rest[j]));
        pos[j] += step & take;
        rest[j] -= weight & take;
      }
    }
    if (shift > 0) {
      // Last `shift` levels, in the tree.
      const Store& store = tree_.store();
      const int64_t range = tree_.range();
      const int64_t first = int64_t{1} << (shift - 1);
      for (int j = 0; j < n; ++j) {
        pos[j] <<= shift;
        if (pos[j] + first <= range) store.Prefetch(pos[j] + first);
      }
      for (int64_t step = first; step > 0; step >>= 1) {
        const int64_t half = step >> 1;
        for (int j = 0; j < n; ++j) {
          const int64_t node = pos[j] + step;
          const bool inside = node <= range;
          const int64_t weight = step + store.Get(inside ? node : range);
          const int64_t take =
              -static_cast<int64_t>(inside & (weight <= rest[j]));
          pos[j] += step & take;
          rest[j] -= weight & take;
          if (half > 0 && pos[j] + half <= range) store.Prefetch(pos[j] + half);
        }
      }
    }
    for (int j = 0; j < n; ++j) out[j] = pos[j];
  }

 private:
  const UnigramTree<Store>& tree_;
  int shift_ = 0;
  int64_t top_size_ = 0;
  int64_t top_step_ = 0;
  std::vector<int64_t> top_;
};

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

// Compact copies hold at most kMinTopNodes + num_sampled nodes, and never more
// than kMaxTopNodes (32 KiB): the copy costs no more than the draws.
constexpr int64_t kMinTopNodes = 256;
constexpr int64_t kMaxTopNodes = 4096;

// Draws `num_sampled` candidates from `tree` into `out`: independently, or for
// `unique` by rejecting repeats. Returns the number of draws made.
template <typename Store>
int64_t DrawCandidates(const UnigramTree<Store>& tree, int64_t total_weight,
                       bool unique, tensorflow::random::SimplePhilox* rng,
                       int64_t num_sampled, int64_t* out) {
  // Draws are made in groups (see GroupFinder), in stream order. With
  // `unique`, the last group may draw a few values past the last one needed;
  // they are ignored, and since every call starts at its own reserved stream
  // position, the results are those of drawing one at a time.
  constexpr int kGroup = GroupFinder<Store>::kGroup;
  const GroupFinder<Store> finder(
      tree, std::min(kMaxTopNodes, kMinTopNodes + num_sampled));
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
      finder.FindGroup(r, n, out + i);
    }
    return num_sampled;
  }
  SeenSet seen(tree.range(), num_sampled);
  int64_t num_tries = 0;
  int64_t picked = 0;
  while (picked < num_sampled) {
    // No more draws than could still be needed if all were new.
    const int n =
        static_cast<int>(std::min<int64_t>(kGroup, num_sampled - picked));
    for (int j = 0; j < n; ++j) {
      r[j] = static_cast<int64_t>(uniform(rng));
    }
    finder.FindGroup(r, n, found);
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
  constexpr int64_t kAhead = 16;
  for (int64_t i = 0; i < num_values; ++i) {
    if (i + kAhead < num_values) tree.PrefetchClass(values[i + kAhead]);
    const float p = static_cast<float>(tree.Weight(values[i])) / total;
    out[i] = ExpectedCount(p, num_sampled, num_tries);
  }
}

// Fills the expected counts of the `n` true classes `classes`, then adds them
// to `tree`. Streams repeat classes a lot: each distinct class has its weight
// read and its path updated once (by its multiplicity), with prefetches.
template <typename Store>
void LearnTrueClasses(UnigramTree<Store>* tree, int64_t total_weight,
                      int64_t num_sampled, int64_t num_tries,
                      const int64_t* classes, int64_t n, float* expected) {
  Int64HashMap index(n);
  std::vector<int64_t> distinct;
  std::vector<int64_t> multiplicity;
  std::vector<int64_t> which(static_cast<size_t>(n));
  distinct.reserve(static_cast<size_t>(n));
  multiplicity.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    bool inserted = false;
    int64_t* slot = index.FindOrInsert(classes[i], &inserted);
    if (inserted) {
      *slot = static_cast<int64_t>(distinct.size());
      distinct.push_back(classes[i]);
      multiplicity.push_back(0);
      tree->PrefetchClass(classes[i]);
    }
    ++multiplicity[*slot];
    which[i] = *slot;
  }
  const int64_t d = static_cast<int64_t>(distinct.size());
  std::vector<float> value(static_cast<size_t>(d));
  const float total = static_cast<float>(total_weight);
  for (int64_t k = 0; k < d; ++k) {
    const float p = static_cast<float>(tree->Weight(distinct[k])) / total;
    value[k] = ExpectedCount(p, num_sampled, num_tries);
  }
  for (int64_t i = 0; i < n; ++i) expected[i] = value[which[i]];
  for (int64_t k = 0; k < d; ++k) tree->Update(distinct[k], multiplicity[k]);
}

}  // namespace tf_sampling

#endif  // TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_FENWICK_SAMPLER_H_
