// CUDA kernel of radius_neighbors: one thread per query, search shared with the CPU kernel.
#include "cuda/radius.h"
#include "gaussocc/radius_math.h"

namespace gaussocc {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void radius_neighbors_kernel(const T* __restrict__ queries, const T* __restrict__ points,
                                        const double* __restrict__ grid, const int64_t* __restrict__ keys,
                                        const int64_t* __restrict__ order, int64_t B, int64_t M, int64_t N,
                                        double radius, int64_t K, int64_t* __restrict__ idx, T* __restrict__ dist) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * M) return;
  const int64_t b = t / M;
  const RadiusGrid g = load_radius_grid(grid + 7 * b);
  const int64_t found = radius_search_one<T>(queries + 3 * t, points + 3 * N * b, keys + N * b, order + N * b, N, g,
                                             radius, K, idx + K * t, dist + K * t);
  for (int64_t s = 0; s < found; ++s) dist[K * t + s] = sqrt(dist[K * t + s]);
}

}  // namespace

template <typename T>
void launch_radius_neighbors(const T* queries, const T* points, const double* grid, const int64_t* keys,
                             const int64_t* order, int64_t B, int64_t M, int64_t N, double radius, int64_t K,
                             int64_t* idx, T* dist, cudaStream_t stream) {
  const int64_t total = B * M;
  if (total == 0) return;
  const unsigned int blocks = static_cast<unsigned int>((total + kThreads - 1) / kThreads);
  radius_neighbors_kernel<T><<<blocks, kThreads, 0, stream>>>(queries, points, grid, keys, order, B, M, N, radius,
                                                              K, idx, dist);
}

template void launch_radius_neighbors<float>(const float*, const float*, const double*, const int64_t*,
                                             const int64_t*, int64_t, int64_t, int64_t, double, int64_t,
                                             int64_t*, float*, cudaStream_t);
template void launch_radius_neighbors<double>(const double*, const double*, const double*, const int64_t*,
                                              const int64_t*, int64_t, int64_t, int64_t, double, int64_t,
                                              int64_t*, double*, cudaStream_t);

}  // namespace gaussocc
