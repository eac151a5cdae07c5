// Input checks and output allocation of the voxel ray caster (schema in ops/raycast.cpp), shared by the CPU kernel
// (cpu/raycast.cpp) and the CUDA adapter (cuda/raycast_launch.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gaussocc {

// Checks labels [B, X, Y, Z] int64, origins and directions [B, R, 3] (float32 or float64, one
// dtype), all contiguous on one device, and grid_origin and voxel_size of 3 entries, voxel sizes
// > 0; returns the outputs, uninitialised: distance [B, R] (the dtype of origins), label [B, R]
// int64.
std::tuple<at::Tensor, at::Tensor> raycast_outputs(const at::Tensor& labels, const at::Tensor& origins,
                                                   const at::Tensor& directions, at::ArrayRef<double> grid_origin,
                                                   at::ArrayRef<double> voxel_size);

}  // namespace gaussocc
