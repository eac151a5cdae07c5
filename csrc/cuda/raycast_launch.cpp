// torch -> raw pointer adapter of the CUDA ray caster (built only with CUDA).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "cuda/raycast.h"
#include "gaussocc/raycast_math.h"
#include "ops/raycast.h"

namespace gaussocc {
namespace {

std::tuple<at::Tensor, at::Tensor> raycast_cuda(const at::Tensor& labels, const at::Tensor& origins,
                                                const at::Tensor& directions, at::ArrayRef<double> grid_origin,
                                                at::ArrayRef<double> voxel_size, int64_t empty_label,
                                                double max_distance) {
  TORCH_CHECK(origins.is_cuda(), "raycast: expected CUDA tensors, got ", origins.device());
  const c10::cuda::CUDAGuard guard(origins.device());
  at::Tensor distance, hit_label;
  std::tie(distance, hit_label) = raycast_outputs(labels, origins, directions, grid_origin, voxel_size);
  const int64_t B = origins.size(0), R = origins.size(1);
  if (B * R == 0) return {distance, hit_label};
  const int64_t shape[3] = {labels.size(1), labels.size(2), labels.size(3)};
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(origins.scalar_type(), "raycast_cuda", [&] {
    const auto grid = make_raycast_grid<scalar_t>(grid_origin.data(), voxel_size.data(), max_distance);
    launch_raycast<scalar_t>(
        labels.data_ptr<int64_t>(), origins.data_ptr<scalar_t>(), directions.data_ptr<scalar_t>(),
        B, R, shape, grid.origin, grid.voxel_size, empty_label, grid.max_distance, distance.data_ptr<scalar_t>(),
        hit_label.data_ptr<int64_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {distance, hit_label};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("raycast", &raycast_cuda); }

}  // namespace gaussocc
