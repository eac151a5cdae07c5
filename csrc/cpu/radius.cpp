// CPU kernel of radius_neighbors: one sorted cell grid per batch, queries in parallel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "gaussocc/radius_math.h"
#include "ops/radius.h"

namespace gaussocc {
namespace {

std::tuple<at::Tensor, at::Tensor> radius_neighbors_cpu(const at::Tensor& queries, const at::Tensor& points,
                                                         double radius, int64_t max_neighbors, double cell_size) {
  const RadiusSearch search = prepare_radius_neighbors(queries, points, radius, max_neighbors, cell_size);
  if (search.empty) return {search.idx, search.dist};
  const int64_t B = queries.size(0), M = queries.size(1), N = points.size(1), K = max_neighbors;
  AT_DISPATCH_FLOATING_TYPES(queries.scalar_type(), "radius_neighbors_cpu", [&] {
    const scalar_t* qp = queries.data_ptr<scalar_t>();
    const scalar_t* pp = points.data_ptr<scalar_t>();
    const double* gp = search.grid.data_ptr<double>();
    const int64_t* kp = search.keys.data_ptr<int64_t>();
    const int64_t* op = search.order.data_ptr<int64_t>();
    int64_t* ip = search.idx.data_ptr<int64_t>();
    scalar_t* dp = search.dist.data_ptr<scalar_t>();
    at::parallel_for(0, B * M, 64, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / M;
        const RadiusGrid g = load_radius_grid(gp + 7 * b);
        const int64_t found = radius_search_one<scalar_t>(qp + 3 * t, pp + 3 * N * b, kp + N * b, op + N * b, N, g,
                                                          radius, K, ip + K * t, dp + K * t);
        for (int64_t s = 0; s < found; ++s) dp[K * t + s] = std::sqrt(dp[K * t + s]);
      }
    });
  });
  return {search.idx, search.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) { m.impl("radius_neighbors", &radius_neighbors_cpu); }

}  // namespace gaussocc
