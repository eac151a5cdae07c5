// Raw-pointer entry points of csrc/cuda/raycast.cu (no torch types).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gaussocc {

// One thread per ray; arrays as in the `raycast` op schema (labels [B, X, Y, Z], rays [B, R, 3]).
template <typename T>
void launch_raycast(const int64_t* labels, const T* origins, const T* directions, int64_t B,
                    int64_t R, const int64_t shape[3], const T grid_origin[3],
                    const T voxel_size[3], int64_t empty_label, T max_distance, T* distance,
                    int64_t* hit_label, cudaStream_t stream);

}  // namespace gaussocc
