// Torch adapter of the radius_neighbors CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "cuda/radius.h"
#include "ops/radius.h"

namespace gaussocc {
namespace {

std::tuple<at::Tensor, at::Tensor> radius_neighbors_cuda(const at::Tensor& queries, const at::Tensor& points,
                                                          double radius, int64_t max_neighbors, double cell_size) {
  TORCH_CHECK(queries.is_cuda(), "radius_neighbors: expected CUDA tensors, got ", queries.device());
  const c10::cuda::CUDAGuard guard(queries.device());
  at::Tensor idx, dist;
  std::tie(idx, dist) = radius_neighbors_outputs(queries, points, radius, max_neighbors, cell_size);
  const int64_t B = queries.size(0), M = queries.size(1), N = points.size(1), K = max_neighbors;
  if (B == 0 || M == 0 || N == 0 || K == 0) return {idx, dist};
  const at::Tensor& q = queries;
  const at::Tensor& p = points;
  at::Tensor grid, keys, order;
  std::tie(grid, keys, order) = build_radius_grid(p, radius, cell_size);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "radius_neighbors_cuda", [&] {
    launch_radius_neighbors<scalar_t>(
        q.data_ptr<scalar_t>(), p.data_ptr<scalar_t>(), grid.data_ptr<double>(), keys.data_ptr<int64_t>(),
        order.data_ptr<int64_t>(), B, M, N, radius, K, idx.data_ptr<int64_t>(), dist.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {idx, dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("radius_neighbors", &radius_neighbors_cuda); }

}  // namespace gaussocc
