// radius_neighbors: nearest <= K points within a radius of each query, on a sorted cell grid.
#include "ops/radius.h"

#include <torch/library.h>

#include "gaussocc/radius_math.h"

namespace gaussocc {

void check_radius_inputs(const at::Tensor& queries, const at::Tensor& points, double radius,
                         int64_t max_neighbors, double cell_size) {
  TORCH_CHECK(queries.dim() == 3 && queries.size(2) == 3, "radius_neighbors: queries must be [B, M, 3], got ",
              queries.sizes());
  TORCH_CHECK(points.dim() == 3 && points.size(2) == 3, "radius_neighbors: points must be [B, N, 3], got ",
              points.sizes());
  TORCH_CHECK(queries.size(0) == points.size(0), "radius_neighbors: queries and points must share B, got ",
              queries.size(0), " and ", points.size(0));
  TORCH_CHECK(queries.scalar_type() == points.scalar_type(),
              "radius_neighbors: queries and points must share a dtype, got ", queries.scalar_type(), " and ",
              points.scalar_type());
  TORCH_CHECK(queries.scalar_type() == at::kFloat || queries.scalar_type() == at::kDouble,
              "radius_neighbors: float32 or float64 inputs expected, got ", queries.scalar_type());
  TORCH_CHECK(queries.device() == points.device(), "radius_neighbors: queries and points on different devices");
  TORCH_CHECK(std::isfinite(radius) && radius >= 0, "radius_neighbors: radius must be finite and >= 0, got ",
              radius);
  TORCH_CHECK(std::isfinite(cell_size), "radius_neighbors: cell_size must be finite, got ", cell_size);
  TORCH_CHECK(max_neighbors >= 0, "radius_neighbors: max_neighbors must be >= 0, got ", max_neighbors);
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

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  m.def(
      "radius_neighbors(Tensor queries, Tensor points, float radius, int max_neighbors, float cell_size) "
      "-> (Tensor, Tensor)");
}
