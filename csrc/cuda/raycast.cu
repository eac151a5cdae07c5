// CUDA voxel ray caster: one thread per ray, the Amanatides-Woo walk of raycast_math.h.
#include "cuda/raycast.h"
#include "gaussocc/raycast_math.h"

namespace gaussocc {
namespace {

struct GridParams {
  int64_t shape[3];
};

template <typename T>
struct Vec3 {
  T v[3];
};

template <typename T>
__global__ void raycast_kernel(const int64_t* __restrict__ labels, const T* __restrict__ origins,
                               const T* __restrict__ directions, int64_t B, int64_t R,
                               GridParams grid, Vec3<T> grid_origin, Vec3<T> voxel_size,
                               int64_t empty_label, T max_distance, T* __restrict__ distance,
                               int64_t* __restrict__ hit_label) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= B * R) return;
  const int64_t b = r / R;
  const int64_t voxels = grid.shape[0] * grid.shape[1] * grid.shape[2];
  const T o[3] = {origins[3 * r], origins[3 * r + 1], origins[3 * r + 2]};
  const T d[3] = {directions[3 * r], directions[3 * r + 1], directions[3 * r + 2]};
  RayHit<T> hit = cast_ray<T>(labels + b * voxels, grid.shape, grid_origin.v, voxel_size.v, o, d,
                              empty_label, max_distance);
  hit_label[r] = hit.label;
  distance[r] = hit.label >= 0 ? hit.distance : T(1) / T(0);
}

}  // namespace

template <typename T>
void launch_raycast(const int64_t* labels, const T* origins, const T* directions, int64_t B,
                    int64_t R, const int64_t shape[3], const T grid_origin[3],
                    const T voxel_size[3], int64_t empty_label, T max_distance, T* distance,
                    int64_t* hit_label, cudaStream_t stream) {
  const int64_t n = B * R;
  if (n == 0) return;
  GridParams grid{{shape[0], shape[1], shape[2]}};
  Vec3<T> go{{grid_origin[0], grid_origin[1], grid_origin[2]}};
  Vec3<T> vs{{voxel_size[0], voxel_size[1], voxel_size[2]}};
  const int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  raycast_kernel<T><<<static_cast<unsigned int>(blocks), threads, 0, stream>>>(
      labels, origins, directions, B, R, grid, go, vs, empty_label, max_distance, distance,
      hit_label);
}

template void launch_raycast<float>(const int64_t*, const float*, const float*, int64_t,
                                    int64_t, const int64_t[3], const float[3],
                                    const float[3], int64_t, float, float*, int64_t*,
                                    cudaStream_t);
template void launch_raycast<double>(const int64_t*, const double*, const double*, int64_t,
                                     int64_t, const int64_t[3], const double[3],
                                     const double[3], int64_t, double, double*, int64_t*,
                                     cudaStream_t);

}  // namespace gaussocc
