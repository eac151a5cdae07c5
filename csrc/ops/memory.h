// Input checks of the GaussianMemory ops, shared by the CPU kernels and the CUDA adapter.
#pragma once

#include <ATen/core/Tensor.h>

#include "gaussocc/memory_math.h"

namespace gaussocc {

// The layout documented in ops/memory.cpp: one float dtype, one device, contiguous.
void check_memory_fuse_inputs(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                              const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                              const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                              const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                              const at::Tensor& new_opacities, const at::Tensor& new_features,
                              const at::Tensor& new_confidence, const at::Tensor& new_tags, const at::Tensor& targets,
                              const at::Tensor& offsets, const at::Tensor& pair_new, const at::Tensor& coef,
                              double gamma);

// The eviction heap's state and arguments (see ops/memory.cpp): heap, heap_pos [cap], heap_size [1],
// last_seen [cap], removed [r], added [a] int64 and confidence [cap] float32/float64, contiguous CPU
// tensors; pop >= 0.
void check_memory_evict_heap_inputs(const at::Tensor& heap, const at::Tensor& heap_pos, const at::Tensor& heap_size,
                                    const at::Tensor& confidence, const at::Tensor& last_seen,
                                    const at::Tensor& removed, const at::Tensor& added, int64_t pop);

// The raw pointers of one memory_fuse call (checked tensors, memory dtype T).
template <typename T>
FuseArgs<T> memory_fuse_args(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                             const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                             const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                             const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                             const at::Tensor& new_opacities, const at::Tensor& new_features,
                             const at::Tensor& new_confidence, const at::Tensor& new_tags, const at::Tensor& targets,
                             const at::Tensor& offsets, const at::Tensor& pair_new, const at::Tensor& coef,
                             double gamma, int64_t frame) {
  return FuseArgs<T>{means.data_ptr<T>(),
                     scales.data_ptr<T>(),
                     quats.data_ptr<T>(),
                     opacities.data_ptr<T>(),
                     features.data_ptr<T>(),
                     confidence.data_ptr<T>(),
                     observations.data_ptr<int64_t>(),
                     last_seen.data_ptr<int64_t>(),
                     tags.data_ptr<bool>(),
                     new_means.data_ptr<T>(),
                     new_scales.data_ptr<T>(),
                     new_quats.data_ptr<T>(),
                     new_opacities.data_ptr<T>(),
                     new_features.data_ptr<T>(),
                     new_confidence.data_ptr<T>(),
                     new_tags.data_ptr<bool>(),
                     targets.data_ptr<int64_t>(),
                     offsets.data_ptr<int64_t>(),
                     pair_new.data_ptr<int64_t>(),
                     coef.numel() ? coef.data_ptr<T>() : nullptr,
                     features.size(1),
                     gamma,
                     frame};
}

}  // namespace gaussocc
