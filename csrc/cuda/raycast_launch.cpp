// torch -> raw pointer adapter of the CUDA ray caster (built only with CUDA).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "cuda/raycast.h"

namespace gaussocc {

std::tuple<at::Tensor, at::Tensor> raycast_cuda(const at::Tensor& labels_in, const at::Tensor& origins_in,
                                                const at::Tensor& directions_in,
                                                at::ArrayRef<double> grid_origin,
                                                at::ArrayRef<double> voxel_size, int64_t empty_label,
                                                double max_distance) {
  TORCH_CHECK(labels_in.is_cuda() && origins_in.is_cuda() && directions_in.is_cuda(),
              "raycast: all tensors must be on CUDA");
  TORCH_CHECK(labels_in.device() == origins_in.device() && origins_in.device() == directions_in.device(),
              "raycast: all tensors must be on the same device");
  TORCH_CHECK(labels_in.dim() == 4 && labels_in.scalar_type() == at::kLong,
              "raycast: labels must be int64 [B, X, Y, Z], got ", labels_in.sizes(), " ",
              labels_in.scalar_type());
  TORCH_CHECK(origins_in.dim() == 3 && origins_in.size(2) == 3 &&
                  origins_in.size(0) == labels_in.size(0),
              "raycast: origins must be [B, R, 3] with B = ", labels_in.size(0), ", got ",
              origins_in.sizes());
  TORCH_CHECK(directions_in.sizes() == origins_in.sizes(), "raycast: directions must match origins ",
              origins_in.sizes(), ", got ", directions_in.sizes());
  TORCH_CHECK(origins_in.scalar_type() == directions_in.scalar_type() &&
                  origins_in.is_floating_point(),
              "raycast: origins and directions must share a floating dtype");
  TORCH_CHECK(grid_origin.size() == 3 && voxel_size.size() == 3,
              "raycast: grid_origin and voxel_size must have 3 entries");
  const c10::cuda::CUDAGuard guard(origins_in.device());
  auto labels = labels_in.contiguous();
  auto origins = origins_in.contiguous();
  auto directions = directions_in.contiguous();
  const int64_t B = origins.size(0), R = origins.size(1);
  auto distance = at::empty({B, R}, origins.options());
  auto hit_label = at::empty({B, R}, origins.options().dtype(at::kLong));
  if (B * R == 0) return {distance, hit_label};
  const int64_t shape[3] = {labels.size(1), labels.size(2), labels.size(3)};
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(origins.scalar_type(), "raycast_cuda", [&] {
    const scalar_t go[3] = {scalar_t(grid_origin[0]), scalar_t(grid_origin[1]),
                            scalar_t(grid_origin[2])};
    const scalar_t vs[3] = {scalar_t(voxel_size[0]), scalar_t(voxel_size[1]),
                            scalar_t(voxel_size[2])};
    const scalar_t max_t = max_distance > double(std::numeric_limits<scalar_t>::max())
                               ? std::numeric_limits<scalar_t>::max()
                               : scalar_t(max_distance);
    cudaError_t err = launch_raycast<scalar_t>(
        labels.data_ptr<int64_t>(), origins.data_ptr<scalar_t>(), directions.data_ptr<scalar_t>(),
        B, R, shape, go, vs, empty_label, max_t, distance.data_ptr<scalar_t>(),
        hit_label.data_ptr<int64_t>(), stream);
    TORCH_CHECK(err == cudaSuccess, "raycast: CUDA launch failed: ", cudaGetErrorString(err));
  });
  return {distance, hit_label};
}

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("raycast", &raycast_cuda); }

}  // namespace gaussocc
