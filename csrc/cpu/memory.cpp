// CPU kernels of the GaussianMemory ops: the fusion step (targets in parallel) and the
// eviction heap (sequential).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "gaussocc/memory_math.h"
#include "ops/memory.h"

namespace gaussocc {
namespace {

// memory_fuse (ops/memory.h: memory_fuse_op): the pairs' indices are checked, then the targets
// are fused in parallel.
struct CpuMemoryFuse {
  template <typename T>
  static void fuse(const FuseArgs<T>& a, const FuseTensors& t) {
    const int64_t T_ = t.targets.numel(), cap = t.means.size(0), n = t.new_means.size(0), P = t.pair_new.numel();
    if (T_ == 0) return;
    TORCH_CHECK(a.offsets[0] == 0 && a.offsets[T_] == P, "memory_fuse: offsets must run from 0 to ", P);
    for (int64_t k = 0; k < T_; ++k) {
      TORCH_CHECK(a.targets[k] >= 0 && a.targets[k] < cap, "memory_fuse: target ", a.targets[k], " outside [0, ",
                  cap, ")");
      TORCH_CHECK(a.offsets[k] <= a.offsets[k + 1], "memory_fuse: offsets must not decrease");
    }
    for (int64_t p = 0; p < P; ++p)
      TORCH_CHECK(a.pair_new[p] >= 0 && a.pair_new[p] < n, "memory_fuse: pair_new ", a.pair_new[p], " outside [0, ",
                  n, ")");
    // about 1 ms of work per chunk (see cpu/radius_index.cpp)
    at::parallel_for(0, T_, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) memory_fuse_one(a, k);
    });
  }
};

template <typename T>
struct EvictHeap {
  int64_t* heap;
  int64_t* pos;
  int64_t size;
  const T* conf;
  const int64_t* seen;

  // evicted first: lower confidence, then older last_seen, then the lower row
  bool before(int64_t a, int64_t b) const {
    if (conf[a] != conf[b]) return conf[a] < conf[b];
    if (seen[a] != seen[b]) return seen[a] < seen[b];
    return a < b;
  }
  void place(int64_t i, int64_t row) {
    heap[i] = row;
    pos[row] = i;
  }
  void sift_up(int64_t i) {
    const int64_t row = heap[i];
    while (i > 0) {
      const int64_t parent = (i - 1) / 2;
      if (!before(row, heap[parent])) break;
      place(i, heap[parent]);
      i = parent;
    }
    place(i, row);
  }
  void sift_down(int64_t i) {
    const int64_t row = heap[i];
    while (true) {
      int64_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && before(heap[child + 1], heap[child])) ++child;
      if (!before(heap[child], row)) break;
      place(i, heap[child]);
      i = child;
    }
    place(i, row);
  }
};

at::Tensor memory_evict_heap_cpu(const at::Tensor& heap, const at::Tensor& heap_pos, const at::Tensor& heap_size,
                                 const at::Tensor& confidence, const at::Tensor& last_seen, const at::Tensor& removed,
                                 const at::Tensor& added, int64_t pop) {
  check_memory_evict_heap_inputs(heap, heap_pos, heap_size, confidence, last_seen, removed, added, pop);
  const int64_t cap = heap.numel();
  int64_t* size = heap_size.data_ptr<int64_t>();
  TORCH_CHECK(*size >= 0 && *size <= cap, "memory_evict_heap: heap_size ", *size, " outside [0, ", cap, "]");
  at::Tensor popped = at::empty({pop}, heap.options());
  AT_DISPATCH_FLOATING_TYPES(confidence.scalar_type(), "memory_evict_heap_cpu", [&] {
    EvictHeap<scalar_t> h{heap.data_ptr<int64_t>(), heap_pos.data_ptr<int64_t>(), *size,
                          confidence.data_ptr<scalar_t>(), last_seen.data_ptr<int64_t>()};
    const int64_t* rp = removed.data_ptr<int64_t>();
    for (int64_t k = 0; k < removed.numel(); ++k) {
      const int64_t row = rp[k];
      TORCH_CHECK(row >= 0 && row < cap, "memory_evict_heap: row ", row, " outside [0, ", cap, ")");
      const int64_t at = h.pos[row];
      if (at < 0) continue;
      h.pos[row] = -1;
      --h.size;
      if (at < h.size) {
        const int64_t moved = h.heap[h.size];
        h.place(at, moved);
        h.sift_up(at);
        h.sift_down(h.pos[moved]);
      }
    }
    const int64_t* ap = added.data_ptr<int64_t>();
    for (int64_t k = 0; k < added.numel(); ++k) {
      const int64_t row = ap[k];
      TORCH_CHECK(row >= 0 && row < cap, "memory_evict_heap: row ", row, " outside [0, ", cap, ")");
      TORCH_CHECK(h.pos[row] < 0, "memory_evict_heap: row ", row, " is already in the heap");
      TORCH_CHECK(h.size < cap, "memory_evict_heap: the heap is full");
      h.place(h.size++, row);
      h.sift_up(h.size - 1);
    }
    TORCH_CHECK(pop <= h.size, "memory_evict_heap: cannot pop ", pop, " of ", h.size, " rows");
    int64_t* out = popped.data_ptr<int64_t>();
    for (int64_t k = 0; k < pop; ++k) {
      const int64_t row = h.heap[0];
      out[k] = row;
      h.pos[row] = -1;
      --h.size;
      if (h.size > 0) {
        h.place(0, h.heap[h.size]);
        h.sift_down(0);
      }
    }
    *size = h.size;
  });
  return popped;
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("memory_fuse", &memory_fuse_op<CpuMemoryFuse>);
  m.impl("memory_evict_heap", &memory_evict_heap_cpu);
}

}  // namespace gaussocc
