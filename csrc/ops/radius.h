// Input checks of radius_neighbors (schema in ops/radius.cpp), its outputs and the sorted cell grid
// (built with device-agnostic ATen ops), shared by the CPU kernel and the CUDA adapter.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace gaussocc {

// A checked radius_neighbors call, ready for either backend: the outputs filled with the padding,
// indices [B, M, K] = -1 (int64) and distances [B, M, K] = inf; whether there is nothing to search
// (B, M, N or K is 0); and otherwise the sorted cell grid of the points: grid parameters [B, 7]
// double (origin xyz, cell edge, dims xyz), sorted cell keys [B, N] int64 and the point order that
// sorts them [B, N] int64 (stable, so points of one cell stay in index order).
struct RadiusSearch {
  at::Tensor idx, dist;
  bool empty;
  at::Tensor grid, keys, order;
};

// Checks queries [B, M, 3] and points [B, N, 3] (one float dtype and device, contiguous),
// radius >= 0, max_neighbors >= 0, and prepares the search.
RadiusSearch prepare_radius_neighbors(const at::Tensor& queries, const at::Tensor& points, double radius,
                                      int64_t max_neighbors, double cell_size);

}  // namespace gaussocc
