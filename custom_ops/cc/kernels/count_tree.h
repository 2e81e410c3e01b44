// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// The learned-unigram counts as an 8-ary tree of cache-line blocks.
//
// Class c has weight 1 + count(c). The tree stores only the counts (the base
// weight of 1 per class is implicit, so an untouched tree is all zeros).
// Level 0 has one entry per class, level l + 1 one entry per block of 8
// entries of level l, up to a single top block. A block is 8 int64 in one
// 64-byte cache line holding the *inclusive prefix sums* of its entries'
// subtree counts, so that
//  * a descent (drawing a class for a uniform r) visits one cache line per
//    level, log8(range) lines in all (a binary tree visits 3x as many, most
//    of them cache misses on a large range), and picks the child with 8
//    independent comparisons;
//  * a class's count is one read (two entries of one line);
//  * adding to a class rewrites one suffix of one line per level.
// The stores below hold the blocks: a flat array (owned, lazily zeroed, or a
// TensorFlow tensor's buffer) or, for ranges too large for memory, a hash map
// of the blocks that were ever touched.

#ifndef TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_COUNT_TREE_H_
#define TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_COUNT_TREE_H_

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace tf_sampling {

// Entries per block: one 64-byte cache line of int64.
constexpr int kFanout = 8;
constexpr int kFanoutBits = 3;

// Level sizes of the tree over [0, range) and, for every level, the inclusive
// prefix sums of the base weights (1 per class) of a block's entries: one
// table for full blocks and one for the level's last, possibly partial, block.
class TreeShape {
 public:
  // The most levels any int64 range needs: ceil(63 / 3) + 1.
  static constexpr int kMaxLevels = 22;

  explicit TreeShape(int64_t range) : range_(range) {
    int64_t entries = range;  // Entries at the current level.
    int64_t span = 1;         // Classes under one entry of the current level.
    for (int level = 0;; ++level) {
      const int64_t blocks = entries / kFanout + (entries % kFanout != 0);
      num_blocks_[level] = blocks;
      // The last block's first class; below range, so no overflow.
      const int64_t last_start = (blocks - 1) * kFanout * span;
      int64_t full = 0;
      int64_t last = 0;
      for (int k = 0; k < kFanout; ++k) {
        // Saturate: a full block at the top level may span beyond int64.
        full = full > INT64_MAX - span ? INT64_MAX : full + span;
        last = std::min(range - last_start,
                        last > INT64_MAX - span ? INT64_MAX : last + span);
        full_base_[level][k] = full;
        last_base_[level][k] = last;
      }
      if (blocks == 1) {
        num_levels_ = level + 1;
        break;
      }
      entries = blocks;
      span = span > INT64_MAX / kFanout ? INT64_MAX : span * kFanout;
    }
    // Flat layout: level 0 first, so the first `range` entries are per-class.
    int64_t offset = 0;
    for (int level = 0; level < num_levels_; ++level) {
      offset_[level] = offset;
      const int64_t size = num_blocks_[level] * kFanout;
      flat_size_ = offset > INT64_MAX - size ? -1 : offset + size;
      if (flat_size_ < 0) break;
      offset = flat_size_;
    }
  }

  int64_t range() const { return range_; }
  int num_levels() const { return num_levels_; }
  int top_level() const { return num_levels_ - 1; }
  int64_t num_blocks(int level) const { return num_blocks_[level]; }
  // Index of level `level`'s first entry in the flat layout.
  int64_t offset(int level) const { return offset_[level]; }
  // Entries of the flat layout; -1 if that would overflow int64.
  int64_t flat_size() const { return flat_size_; }

  // Inclusive prefix sums of the base weights of block `block`'s entries.
  const int64_t* base(int level, int64_t block) const {
    return block == num_blocks_[level] - 1 ? last_base_[level]
                                           : full_base_[level];
  }

 private:
  int64_t range_;
  int num_levels_ = 0;
  int64_t flat_size_ = 0;
  int64_t num_blocks_[kMaxLevels] = {};
  int64_t offset_[kMaxLevels] = {};
  alignas(64) int64_t full_base_[kMaxLevels][kFanout] = {};
  alignas(64) int64_t last_base_[kMaxLevels][kFanout] = {};
};

// Number of k in [0, 8) with counts[k] + base[k] <= rest: the child a descent
// moves to, since both prefix sums grow with k.
inline int CountAtMost(const int64_t* counts, const int64_t* base,
                       int64_t rest) {
#if defined(__SSE4_2__)
  // Each comparison is -1 where an entry exceeds rest; summing the four
  // pairs and then the two lanes gives minus the number that do.
  const __m128i r = _mm_set1_epi64x(rest);
  const auto* c = reinterpret_cast<const __m128i*>(counts);
  const auto* b = reinterpret_cast<const __m128i*>(base);
  auto exceeds = [&](int pair) {
    return _mm_cmpgt_epi64(
        _mm_add_epi64(_mm_loadu_si128(c + pair), _mm_loadu_si128(b + pair)), r);
  };
  static_assert(kFanout == 8, "four pairs");
  __m128i greater = _mm_add_epi64(_mm_add_epi64(exceeds(0), exceeds(1)),
                                  _mm_add_epi64(exceeds(2), exceeds(3)));
  greater = _mm_add_epi64(greater, _mm_unpackhi_epi64(greater, greater));
  return kFanout + static_cast<int>(_mm_cvtsi128_si64(greater));
#else
  int count = 0;
  for (int k = 0; k < kFanout; ++k) count += counts[k] + base[k] <= rest;
  return count;
#endif
}

// Adds `delta` to entries [k, 8) of a block.
inline void AddToSuffix(int64_t* block, int k, int64_t delta) {
  for (int j = 0; j < kFanout; ++j) block[j] += delta & -int64_t{j >= k};
}

// Blocks in a flat int64 array laid out as TreeShape says. Does not own it.
class FlatStore {
 public:
  FlatStore(const TreeShape& shape, int64_t* data) {
    for (int level = 0; level < shape.num_levels(); ++level) {
      level_data_[level] = data + shape.offset(level);
    }
  }
  const int64_t* Block(int level, int64_t block) const {
    return level_data_[level] + block * kFanout;
  }
  int64_t* MutableBlock(int level, int64_t block) {
    return level_data_[level] + block * kFanout;
  }
  void Prefetch(int level, int64_t block) const {
    __builtin_prefetch(level_data_[level] + block * kFanout);
  }

 private:
  int64_t* level_data_[TreeShape::kMaxLevels] = {};
};

// A zeroed flat array the store owns. Beyond 2 MiB it is aligned to and
// advised into transparent huge pages (random descents miss the TLB less);
// its pages are only touched when written.
class OwnedFlatStore : public FlatStore {
 public:
  // ok() is false if the memory could not be allocated.
  explicit OwnedFlatStore(const TreeShape& shape)
      : OwnedFlatStore(shape, AllocateZeroed(shape.flat_size())) {}
  bool ok() const { return memory_ != nullptr; }

 private:
  struct Free {
    void operator()(int64_t* p) const { std::free(p); }
  };
  OwnedFlatStore(const TreeShape& shape, int64_t* memory)
      : FlatStore(shape, memory != nullptr ? memory : &empty_),
        memory_(memory) {}

  static int64_t* AllocateZeroed(int64_t count) {
    if (count < 0 ||
        static_cast<uint64_t>(count) > (~size_t{0} >> 4) / sizeof(int64_t)) {
      return nullptr;
    }
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = sizeof(int64_t) * static_cast<size_t>(count);
    if (bytes < kHuge) {
      // Blocks must not straddle cache lines.
      void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (p != nullptr) std::memset(p, 0, bytes);
      return static_cast<int64_t*>(p);
    }
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (p == nullptr) return nullptr;
    madvise(p, rounded, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
    return static_cast<int64_t*>(p);
  }

  static int64_t empty_;
  std::unique_ptr<int64_t[], Free> memory_;
};
inline int64_t OwnedFlatStore::empty_ = 0;

// Open-addressing (linear probing) hash map from non-negative int64 keys to
// int64 values. Missing keys read as -1. Not thread-safe.
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

  // The value of `key`, or -1.
  int64_t Get(int64_t key) const {
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return slot.value;
      if (slot.key == kEmpty) return -1;
    }
  }

  // Hints the CPU to fetch the slot where a lookup of `key` starts.
  void Prefetch(int64_t key) const { __builtin_prefetch(&slots_[Home(key)]); }

  // The value of `key`, inserted as `value` if absent (then *inserted =
  // true).
  int64_t* FindOrInsert(int64_t key, int64_t value, bool* inserted) {
    if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) Grow();
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == key) return &slot.value;
      if (slot.key == kEmpty) {
        slot.key = key;
        slot.value = value;
        ++size_;
        if (inserted != nullptr) *inserted = true;
        return &slot.value;
      }
    }
  }

  // Inserts `key`; returns false if it was already present.
  bool Insert(int64_t key) {
    bool inserted = false;
    FindOrInsert(key, 0, &inserted);
    return inserted;
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

// Only the blocks ever written, found through one hash map per level: memory
// grows with the number of distinct classes seen, not with the range.
class SparseStore {
 public:
  explicit SparseStore(const TreeShape& shape) : maps_(shape.num_levels()) {}

  const int64_t* Block(int level, int64_t block) const {
    const int64_t slot = maps_[level].Get(block);
    return slot < 0 ? kZeros.data() : blocks_[slot].data();
  }
  int64_t* MutableBlock(int level, int64_t block) {
    bool inserted = false;
    const int64_t* slot = maps_[level].FindOrInsert(
        block, static_cast<int64_t>(blocks_.size()), &inserted);
    if (inserted) blocks_.emplace_back(kZeros);
    return blocks_[*slot].data();
  }
  void Prefetch(int level, int64_t block) const {
    maps_[level].Prefetch(block);
  }

 private:
  alignas(64) static constexpr std::array<int64_t, kFanout> kZeros = {};
  std::vector<Int64HashMap> maps_;
  // A deque keeps blocks in place as it grows.
  std::deque<std::array<int64_t, kFanout>> blocks_;
};

// The count tree over [0, shape.range()) in `Store`.
template <typename Store>
class CountTree {
 public:
  // Descents run this many at a time (see FindGroup): enough that the
  // prefetches issued for a level have arrived from DRAM when it is read.
  static constexpr int kGroup = 128;
  // Levels with at most this many blocks (the top of the tree, which every
  // class reaches) are updated once per AddEach call, not once per class.
  static constexpr int64_t kSmallLevelBlocks = 64;

  CountTree(const TreeShape& shape, Store* store)
      : shape_(shape), store_(store) {}

  int64_t range() const { return shape_.range(); }

  // Number of times class c was counted; one cache line.
  int64_t Count(int64_t c) const {
    const int64_t* block = store_->Block(0, c >> kFanoutBits);
    const int k = static_cast<int>(c & (kFanout - 1));
    return block[k] - (k > 0 ? block[k - 1] : 0);
  }
  int64_t Weight(int64_t c) const { return 1 + Count(c); }

  // Hints the CPU to fetch the line that Count(c) reads.
  void PrefetchClass(int64_t c) const { store_->Prefetch(0, c >> kFanoutBits); }

  // Sum of all weights: range + all counts.
  int64_t TotalWeight() const {
    return shape_.range() + store_->Block(shape_.top_level(), 0)[kFanout - 1];
  }

  // Adds `delta` to class c's count (any sign; a count of -1 gives c weight 0,
  // which no descent lands on). Walks every level: for single classes only.
  void Add(int64_t c, int64_t delta) {
    for (int level = 0; level < shape_.num_levels(); ++level) {
      AddToSuffix(store_->MutableBlock(level, c >> kFanoutBits),
                  static_cast<int>(c & (kFanout - 1)), delta);
      c >>= kFanoutBits;
    }
  }

  // Adds one occurrence of each of the `n` classes. Below the small levels,
  // each class rewrites one block per level. On the small levels every class
  // would rewrite the same few lines, each write queueing behind the last, so
  // the occurrences are first counted per entry (in interleaved lanes, which
  // keeps consecutive increments independent) and each block is written once.
  void AddEach(const int64_t* classes, int64_t n) {
    const int num_levels = shape_.num_levels();
    int small = num_levels;
    while (small > 0 && shape_.num_blocks(small - 1) <= kSmallLevelBlocks) {
      --small;
    }
    constexpr int64_t kAhead = 8;
    for (int64_t i = 0; i < n; ++i) {
      if (i + kAhead < n) {
        int64_t ahead = classes[i + kAhead];
        for (int level = 0; level < small; ++level) {
          store_->Prefetch(level, ahead >> kFanoutBits);
          ahead >>= kFanoutBits;
        }
      }
      int64_t entry = classes[i];
      for (int level = 0; level < small; ++level) {
        AddToSuffix(store_->MutableBlock(level, entry >> kFanoutBits),
                    static_cast<int>(entry & (kFanout - 1)), 1);
        entry >>= kFanoutBits;
      }
    }
    if (small == num_levels) return;
    constexpr int kLanes = 4;
    constexpr int64_t kMaxEntries = kSmallLevelBlocks * kFanout;
    int64_t lanes[kLanes][kMaxEntries];
    int64_t entries = shape_.num_blocks(small) * kFanout;
    for (int lane = 0; lane < kLanes; ++lane) {
      std::fill(lanes[lane], lanes[lane] + entries, 0);
    }
    const int shift = kFanoutBits * small;
    for (int64_t i = 0; i < n; ++i) ++lanes[i % kLanes][classes[i] >> shift];
    int64_t* delta = lanes[0];
    for (int64_t e = 0; e < entries; ++e) {
      delta[e] += lanes[1][e] + lanes[2][e] + lanes[3][e];
    }
    for (int level = small; level < num_levels; ++level) {
      const int64_t blocks = shape_.num_blocks(level);
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t* d = delta + b * kFanout;
        int64_t prefix[kFanout];
        int64_t sum = 0;
        for (int k = 0; k < kFanout; ++k) prefix[k] = sum += d[k];
        if (sum != 0) {
          int64_t* block = store_->MutableBlock(level, b);
          for (int k = 0; k < kFanout; ++k) block[k] += prefix[k];
        }
        // In place: entry b of the level above is block b's total, and
        // block b / 8, which holds delta[b], has been read already.
        delta[b] = sum;
      }
      if (level + 1 < num_levels) {
        std::fill(delta + blocks,
                  delta + shape_.num_blocks(level + 1) * kFanout, 0);
      }
    }
  }

  // out[j] = the class c whose range [W(c), W(c) + weight(c)) of the
  // prefix weights W contains r[j], for 0 <= r[j] < TotalWeight() and
  // j < n <= kGroup. The descents run level by level in lockstep, each
  // prefetching its next block, so that their cache misses overlap instead
  // of queueing.
  void FindGroup(const int64_t* r, int n, int64_t* out) const {
    int64_t node[kGroup];
    int64_t rest[kGroup];
    for (int j = 0; j < n; ++j) {
      node[j] = 0;
      rest[j] = r[j];
    }
    for (int level = shape_.top_level(); level >= 0; --level) {
      for (int j = 0; j < n; ++j) {
        const int64_t* counts = store_->Block(level, node[j]);
        const int64_t* base = shape_.base(level, node[j]);
        const int child = CountAtMost(counts, base, rest[j]);
        // Weight of the children skipped: prefix sum at child - 1, or 0.
        const int before = (child - 1) & (kFanout - 1);
        rest[j] -= (counts[before] + base[before]) & -int64_t{child > 0};
        node[j] = node[j] * kFanout + child;
        if (level > 0) store_->Prefetch(level - 1, node[j]);
      }
    }
    for (int j = 0; j < n; ++j) out[j] = node[j];
  }

 private:
  const TreeShape& shape_;
  Store* store_;
};

// Writes the tree of per-class `counts` [shape.range()] into `tree`
// [shape.flat_size()]; O(range).
inline void CountsToFlatTree(const TreeShape& shape, const int64_t* counts,
                             int64_t* tree) {
  const int64_t range = shape.range();
  int64_t* level0 = tree + shape.offset(0);
  std::memcpy(level0, counts, sizeof(int64_t) * range);
  std::fill(level0 + range, level0 + shape.num_blocks(0) * kFanout, 0);
  for (int level = 0; level < shape.num_levels(); ++level) {
    int64_t* entries = tree + shape.offset(level);
    int64_t* parents = level + 1 < shape.num_levels()
                           ? tree + shape.offset(level + 1)
                           : nullptr;
    const int64_t blocks = shape.num_blocks(level);
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t* block = entries + b * kFanout;
      for (int k = 1; k < kFanout; ++k) block[k] += block[k - 1];
      if (parents != nullptr) parents[b] = block[kFanout - 1];
    }
    if (parents != nullptr) {
      std::fill(parents + blocks,
                parents + shape.num_blocks(level + 1) * kFanout, 0);
    }
  }
}

// Whether the flat `tree` [shape.flat_size()] can be the count tree of
// shape.range() classes, as far as O(levels) reads tell: the padding of each
// level's last block adds nothing (else entries past the range, e.g. the
// classes of a tree of another range with the same size, could be drawn), and
// the total weight range + counts is in [range, 2^63 - 1].
inline bool FlatTreeFitsRange(const TreeShape& shape, const int64_t* tree) {
  int64_t entries = shape.range();
  for (int level = 0; level < shape.num_levels(); ++level) {
    const int64_t last = shape.num_blocks(level) - 1;
    const int64_t* block = tree + shape.offset(level) + last * kFanout;
    const int valid = static_cast<int>(entries - last * kFanout);
    for (int k = valid; k < kFanout; ++k) {
      if (block[k] != block[valid - 1]) return false;
    }
    entries = shape.num_blocks(level);
  }
  const int64_t total = tree[shape.offset(shape.top_level()) + kFanout - 1];
  return total >= 0 && total <= INT64_MAX - shape.range();
}

// Reads the per-class counts [shape.range()] out of `tree`; O(range).
inline void FlatTreeToCounts(const TreeShape& shape, const int64_t* tree,
                             int64_t* counts) {
  const int64_t* level0 = tree + shape.offset(0);
  for (int64_t c = 0; c < shape.range(); ++c) {
    const int k = static_cast<int>(c & (kFanout - 1));
    counts[c] = level0[c] - (k > 0 ? level0[c - 1] : 0);
  }
}

}  // namespace tf_sampling

#endif  // TF_SAMPLING_CUSTOM_OPS_CC_KERNELS_COUNT_TREE_H_
