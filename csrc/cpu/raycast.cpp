// CPU voxel ray caster: one Amanatides-Woo walk per ray (csrc/include/gaussocc/raycast_math.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "gaussocc/raycast_math.h"

namespace gaussocc {
namespace {

void check_inputs(const at::Tensor& labels, const at::Tensor& origins, const at::Tensor& directions,
                  at::ArrayRef<double> grid_origin, at::ArrayRef<double> voxel_size) {
  TORCH_CHECK(labels.dim() == 4 && labels.scalar_type() == at::kLong,
              "raycast: labels must be int64 [B, X, Y, Z], got ", labels.sizes(), " ",
              labels.scalar_type());
  TORCH_CHECK(origins.dim() == 3 && origins.size(2) == 3 && origins.size(0) == labels.size(0),
              "raycast: origins must be [B, R, 3] with B = ", labels.size(0), ", got ",
              origins.sizes());
  TORCH_CHECK(directions.sizes() == origins.sizes(),
              "raycast: directions must match origins ", origins.sizes(), ", got ",
              directions.sizes());
  TORCH_CHECK(origins.scalar_type() == directions.scalar_type() && origins.is_floating_point(),
              "raycast: origins and directions must share a floating dtype");
  TORCH_CHECK(grid_origin.size() == 3 && voxel_size.size() == 3,
              "raycast: grid_origin and voxel_size must have 3 entries");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> raycast_cpu(const at::Tensor& labels_in, const at::Tensor& origins_in,
                                               const at::Tensor& directions_in,
                                               at::ArrayRef<double> grid_origin,
                                               at::ArrayRef<double> voxel_size, int64_t empty_label,
                                               double max_distance) {
  check_inputs(labels_in, origins_in, directions_in, grid_origin, voxel_size);
  auto labels = labels_in.contiguous();
  auto origins = origins_in.contiguous();
  auto directions = directions_in.contiguous();
  const int64_t B = origins.size(0), R = origins.size(1);
  auto distance = at::empty({B, R}, origins.options());
  auto hit_label = at::empty({B, R}, origins.options().dtype(at::kLong));
  const int64_t shape[3] = {labels.size(1), labels.size(2), labels.size(3)};
  const int64_t voxels = shape[0] * shape[1] * shape[2];
  if (B * R == 0) return {distance, hit_label};

  AT_DISPATCH_FLOATING_TYPES(origins.scalar_type(), "raycast_cpu", [&] {
    const scalar_t go[3] = {scalar_t(grid_origin[0]), scalar_t(grid_origin[1]),
                            scalar_t(grid_origin[2])};
    const scalar_t vs[3] = {scalar_t(voxel_size[0]), scalar_t(voxel_size[1]),
                            scalar_t(voxel_size[2])};
    const scalar_t max_t = max_distance > double(std::numeric_limits<scalar_t>::max())
                               ? std::numeric_limits<scalar_t>::max()
                               : scalar_t(max_distance);
    const int64_t* lab = labels.data_ptr<int64_t>();
    const scalar_t* o = origins.data_ptr<scalar_t>();
    const scalar_t* d = directions.data_ptr<scalar_t>();
    scalar_t* dist = distance.data_ptr<scalar_t>();
    int64_t* out = hit_label.data_ptr<int64_t>();
    at::parallel_for(0, B * R, 256, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / R;
        RayHit<scalar_t> hit = cast_ray<scalar_t>(lab + b * voxels, shape, go, vs, o + 3 * r,
                                                  d + 3 * r, empty_label, max_t);
        out[r] = hit.label;
        dist[r] = hit.label >= 0 ? hit.distance : std::numeric_limits<scalar_t>::infinity();
      }
    });
  });
  return {distance, hit_label};
}

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) { m.impl("raycast", &raycast_cpu); }

}  // namespace gaussocc
