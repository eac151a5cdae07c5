// radius_neighbors: nearest <= K points within a radius of each query, on a sorted cell grid.
#include "ops/radius.h"

#include <torch/library.h>

#include <limits>

#include "gaussocc/radius_math.h"
#include "ops/checks.h"

namespace gaussocc {

namespace {

std::tuple<at::Tensor, at::Tensor> radius_neighbors_outputs(const at::Tensor& queries, const at::Tensor& points,
                                                             double radius, int64_t max_neighbors, double cell_size) {
  const char* op = "radius_neighbors";
  check_dim(op, queries, "queries", 3, "[B, M, 3]");
  check_dim(op, points, "points", 3, "[B, N, 3]");
  check_float_dtype(op, queries, "queries");
  const int64_t B = queries.size(0), M = queries.size(1), N = points.size(1);
  check_tensor(op, queries, "queries", {B, M, 3}, queries.scalar_type(), queries.device());
  check_tensor(op, points, "points", {B, N, 3}, queries.scalar_type(), queries.device());
  TORCH_CHECK(std::isfinite(radius) && radius >= 0, op, ": radius must be finite and >= 0, got ", radius);
  TORCH_CHECK(std::isfinite(cell_size), op, ": cell_size must be finite, got ", cell_size);
  TORCH_CHECK(max_neighbors >= 0, op, ": max_neighbors must be >= 0, got ", max_neighbors);
  return {at::full({B, M, max_neighbors}, -1, queries.options().dtype(at::kLong)),
          at::full({B, M, max_neighbors}, std::numeric_limits<double>::infinity(), queries.options())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> build_radius_grid(const at::Tensor& points, double radius,
                                                                 double cell_size) {
  const at::Tensor p = points.to(at::kDouble);
  const at::Tensor lo = p.amin(1);                      // [B, 3]
  const at::Tensor extent = p.amax(1) - lo;             // [B, 3]
  const double requested = cell_size > 0 ? cell_size : radius;
  // Coarsen the cells where the extent would need more than kRadiusMaxCellsPerAxis of them;
  // a grid of coincident points (zero extent, radius 0) gets unit cells.
  at::Tensor cell = at::clamp_min(extent.amax(1, /*keepdim=*/true) / kRadiusMaxCellsPerAxis, requested);
  cell = at::where(cell > 0, cell, at::ones_like(cell));  // [B, 1]
  const at::Tensor dims = at::floor(extent / cell) + 1;   // [B, 3]
  const at::Tensor grid = at::cat({lo, cell, dims}, 1).contiguous();

  const at::Tensor coords = at::minimum(at::clamp_min(at::floor((p - lo.unsqueeze(1)) / cell.unsqueeze(1)), 0),
                                        dims.unsqueeze(1) - 1)
                                .to(at::kLong);  // [B, N, 3]
  const at::Tensor dims_l = dims.to(at::kLong);
  const at::Tensor keys = (coords.select(2, 0) * dims_l.select(1, 1).unsqueeze(1) + coords.select(2, 1)) *
                              dims_l.select(1, 2).unsqueeze(1) +
                          coords.select(2, 2);
  auto sorted = at::sort(keys, /*stable=*/true, /*dim=*/1, /*descending=*/false);
  return {grid, std::get<0>(sorted).contiguous(), std::get<1>(sorted).contiguous()};
}

}  // namespace

RadiusSearch prepare_radius_neighbors(const at::Tensor& queries, const at::Tensor& points, double radius,
                                      int64_t max_neighbors, double cell_size) {
  RadiusSearch s;
  std::tie(s.idx, s.dist) = radius_neighbors_outputs(queries, points, radius, max_neighbors, cell_size);
  s.empty = queries.size(0) == 0 || queries.size(1) == 0 || points.size(1) == 0 || max_neighbors == 0;
  if (!s.empty) std::tie(s.grid, s.keys, s.order) = build_radius_grid(points, radius, cell_size);
  return s;
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  m.def(
      "radius_neighbors(Tensor queries, Tensor points, float radius, int max_neighbors, float cell_size) "
      "-> (Tensor, Tensor)");
}
