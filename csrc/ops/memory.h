// Input checks of the GaussianMemory ops and the memory_fuse entry point, shared by the CPU kernels
// and the CUDA adapter.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include "gaussocc/memory_math.h"

namespace gaussocc {

// The tensor arguments of one memory_fuse call, in the order of its schema (ops/memory.cpp).
struct FuseTensors {
  at::Tensor means, scales, quats, opacities, features, confidence, observations, last_seen, tags;
  at::Tensor new_means, new_scales, new_quats, new_opacities, new_features, new_confidence, new_tags;
  at::Tensor targets, offsets, pair_new, coef;
};

// The layout documented in ops/memory.cpp: one float dtype, one device, contiguous; gamma in (0, 1).
void check_memory_fuse_inputs(const FuseTensors& t, double gamma);

// The eviction heap's state and arguments (see ops/memory.cpp): heap, heap_pos [cap], heap_size [1],
// last_seen [cap], removed [r], added [a] int64 and confidence [cap] float32/float64, contiguous CPU
// tensors; pop >= 0.
void check_memory_evict_heap_inputs(const at::Tensor& heap, const at::Tensor& heap_pos, const at::Tensor& heap_size,
                                    const at::Tensor& confidence, const at::Tensor& last_seen,
                                    const at::Tensor& removed, const at::Tensor& added, int64_t pop);

// The raw pointers of one memory_fuse call (checked tensors, memory dtype T).
template <typename T>
FuseArgs<T> memory_fuse_args(const FuseTensors& t, double gamma, int64_t frame) {
  return FuseArgs<T>{t.means.data_ptr<T>(),
                     t.scales.data_ptr<T>(),
                     t.quats.data_ptr<T>(),
                     t.opacities.data_ptr<T>(),
                     t.features.data_ptr<T>(),
                     t.confidence.data_ptr<T>(),
                     t.observations.data_ptr<int64_t>(),
                     t.last_seen.data_ptr<int64_t>(),
                     t.tags.data_ptr<bool>(),
                     t.new_means.data_ptr<T>(),
                     t.new_scales.data_ptr<T>(),
                     t.new_quats.data_ptr<T>(),
                     t.new_opacities.data_ptr<T>(),
                     t.new_features.data_ptr<T>(),
                     t.new_confidence.data_ptr<T>(),
                     t.new_tags.data_ptr<bool>(),
                     t.targets.data_ptr<int64_t>(),
                     t.offsets.data_ptr<int64_t>(),
                     t.pair_new.data_ptr<int64_t>(),
                     t.coef.numel() ? t.coef.data_ptr<T>() : nullptr,
                     t.features.size(1),
                     gamma,
                     frame};
}

// The memory_fuse op on one backend, written once for both: its signature, the checks and the
// dtype dispatch. Kernel::fuse<T>(args, tensors) fuses the checked call (cpu/memory.cpp,
// cuda/memory_launch.cpp).
template <class Kernel>
void memory_fuse_op(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                    const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                    const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                    const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                    const at::Tensor& new_opacities, const at::Tensor& new_features, const at::Tensor& new_confidence,
                    const at::Tensor& new_tags, const at::Tensor& targets, const at::Tensor& offsets,
                    const at::Tensor& pair_new, const at::Tensor& coef, double gamma, int64_t frame) {
  const FuseTensors t{means, scales, quats, opacities, features, confidence, observations, last_seen, tags,
                      new_means, new_scales, new_quats, new_opacities, new_features, new_confidence, new_tags,
                      targets, offsets, pair_new, coef};
  check_memory_fuse_inputs(t, gamma);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "memory_fuse",
                             [&] { Kernel::template fuse<scalar_t>(memory_fuse_args<scalar_t>(t, gamma, frame), t); });
}

}  // namespace gaussocc
