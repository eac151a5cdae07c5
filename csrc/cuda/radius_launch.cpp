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
  const RadiusSearch s = prepare_radius_neighbors(queries, points, radius, max_neighbors, cell_size);
  if (s.empty) return {s.idx, s.dist};
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(queries.scalar_type(), "radius_neighbors_cuda", [&] {
    launch_radius_neighbors<scalar_t>(queries.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(),
                                      s.grid.data_ptr<double>(), s.keys.data_ptr<int64_t>(),
                                      s.order.data_ptr<int64_t>(), queries.size(0), queries.size(1), points.size(1),
                                      radius, max_neighbors, s.idx.data_ptr<int64_t>(), s.dist.data_ptr<scalar_t>(),
                                      stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {s.idx, s.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("radius_neighbors", &radius_neighbors_cuda); }

}  // namespace gaussocc
