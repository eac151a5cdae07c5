// Input checks of radius_neighbors (schema in ops/radius.cpp) and the sorted cell grid (built with
// device-agnostic ATen ops), shared by the CPU kernel and the CUDA adapter.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace gaussocc {

// Checks queries [B, M, 3] and points [B, N, 3] (one float dtype and device, contiguous),
// radius >= 0, max_neighbors >= 0; returns the outputs filled with the padding: indices
// [B, M, K] = -1 (int64) and distances [B, M, K] = inf.
std::tuple<at::Tensor, at::Tensor> radius_neighbors_outputs(const at::Tensor& queries, const at::Tensor& points,
                                                             double radius, int64_t max_neighbors, double cell_size);

// For points [B, N, 3] with N > 0: grid parameters [B, 7] double (origin xyz, cell edge, dims xyz),
// sorted cell keys [B, N] int64 and the point order that sorts them [B, N] int64 (stable, so
// points of one cell stay in index order).
std::tuple<at::Tensor, at::Tensor, at::Tensor> build_radius_grid(const at::Tensor& points, double radius,
                                                                 double cell_size);

}  // namespace gaussocc
