// Input checks, output allocation and raw inputs of the accumulation ops (schemas in
// ops/accumulate.cpp), shared by the CPU kernels (cpu/accumulate.cpp) and the CUDA adapters
// (cuda/accumulate_launch.cpp). The Python API validates user input; these guard the raw ops
// against misuse (wrong shapes, dtypes, layout, mode).
#pragma once

#include <ATen/core/Tensor.h>

#include "gaussocc/accumulate_math.h"

namespace gaussocc {
namespace accum {

struct Sizes {
  int64_t B, N, C, V;
};

// The forward's inputs: means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N],
// features [B,N,C] (one float dtype), valid [B,N] bool, contiguous, on one device; origin,
// voxel_size and shape of 3 entries (voxel sizes and shape > 0); radius > 0 and finite; mode 0, 1
// or 2; empty_index in [0, C] (probabilistic modes). Returns the sizes (V = X * Y * Z).
Sizes check_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                   const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                   at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius,
                   int64_t mode, int64_t empty_index);

// The forward's outputs: occupancy [B, V] and probs [B, V, C + 1] (probabilistic modes, with the
// empty channel; [B, V, C] additive), and the per-voxel state the backward needs (probabilistic
// modes; [B, 0] otherwise): weight W [B, V], log_t [B, V] (sum of log1p(-occ_i) over
// occ_i < 1), n_opaque [B, V] int32 (count of occ_i >= 1). Zero-filled, except the occupancy of
// the probabilistic modes (the forward writes every value).
struct Outputs {
  at::Tensor occupancy, probs, weight, log_t, n_opaque;
};
Outputs allocate_outputs(const at::Tensor& means, const Sizes& sz, int64_t mode);

// The backward's further inputs: the forward's outputs (probs, weight, log_transmittance,
// num_opaque) and the gradients of occupancy [B, V] and probs [B, V, C (+1)], which may have any
// strides (they are read through them, so a permuted gradient needs no copy).
void check_backward_inputs(const at::Tensor& means, const Sizes& sz, int64_t mode, const at::Tensor& probs,
                           const at::Tensor& weight, const at::Tensor& log_t, const at::Tensor& n_opaque,
                           const at::Tensor& g_occ, const at::Tensor& g_probs);

// The backward's outputs, zero-filled (the kernels accumulate into them), shaped like the inputs,
// and its scratch of per-voxel factors vgrad [B, V, 3] (VoxelGrad, uninitialised).
struct Grads {
  at::Tensor means, quats, scales, opacities, features, vgrad;
};
Grads allocate_grads(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                     const at::Tensor& opacities, const at::Tensor& features, const Sizes& sz);

// The raw inputs of one checked call in dtype T.
template <typename T>
Inputs<T> load_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                      const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                      const Sizes& sz, at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size,
                      at::IntArrayRef shape, double radius, int64_t mode, int64_t empty_index, double fill) {
  Inputs<T> in{means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opacities.data_ptr<T>(),
               features.data_ptr<T>(), valid.data_ptr<bool>(), sz.B, sz.N, sz.C, {}, {}};
  for (int j = 0; j < 3; ++j) {
    in.grid.origin[j] = T(origin[j]);
    in.grid.size[j] = T(voxel_size[j]);
    in.grid.dims[j] = shape[j];
  }
  in.p = {int(mode), T(radius), mode == kAdditive ? int64_t(0) : empty_index, T(fill)};
  return in;
}

}  // namespace accum
}  // namespace gaussocc
