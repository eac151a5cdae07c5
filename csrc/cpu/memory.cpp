// CPU kernels of the GaussianMemory ops: the fusion step (targets in parallel) and the
// eviction heap (sequential).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "gaussocc/memory_math.h"
#include "ops/memory.h"

namespace gaussocc {
namespace {

void memory_fuse_cpu(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                     const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                     const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                     const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                     const at::Tensor& new_opacities, const at::Tensor& new_features,
                     const at::Tensor& new_confidence, const at::Tensor& new_tags, const at::Tensor& targets,
                     const at::Tensor& offsets, const at::Tensor& pair_new, const at::Tensor& coef, double gamma,
                     int64_t frame) {
  check_memory_fuse_inputs(means, scales, quats, opacities, features, confidence, observations, last_seen, tags,
                           new_means, new_scales, new_quats, new_opacities, new_features, new_confidence, new_tags,
                           targets, offsets, pair_new, coef, gamma);
  const int64_t T = targets.numel(), cap = means.size(0), n = new_means.size(0), P = pair_new.numel();
  if (T == 0) return;
  const int64_t* tp = targets.data_ptr<int64_t>();
  const int64_t* op = offsets.data_ptr<int64_t>();
  const int64_t* pp = pair_new.data_ptr<int64_t>();
  TORCH_CHECK(op[0] == 0 && op[T] == P, "memory_fuse: offsets must run from 0 to ", P);
  for (int64_t t = 0; t < T; ++t) {
    TORCH_CHECK(tp[t] >= 0 && tp[t] < cap, "memory_fuse: target ", tp[t], " outside [0, ", cap, ")");
    TORCH_CHECK(op[t] <= op[t + 1], "memory_fuse: offsets must not decrease");
  }
  for (int64_t p = 0; p < P; ++p)
    TORCH_CHECK(pp[p] >= 0 && pp[p] < n, "memory_fuse: pair_new ", pp[p], " outside [0, ", n, ")");
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "memory_fuse_cpu", [&] {
    const FuseArgs<scalar_t> a = memory_fuse_args<scalar_t>(
        means, scales, quats, opacities, features, confidence, observations, last_seen, tags, new_means, new_scales,
        new_quats, new_opacities, new_features, new_confidence, new_tags, targets, offsets, pair_new, coef, gamma,
        frame);
    // about 1 ms of work per chunk (see cpu/radius_index.cpp)
    at::parallel_for(0, T, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) memory_fuse_one(a, t);
    });
  });
}

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
  m.impl("memory_fuse", &memory_fuse_cpu);
  m.impl("memory_evict_heap", &memory_evict_heap_cpu);
}

}  // namespace gaussocc
