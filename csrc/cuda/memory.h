// What csrc/cuda/memory.cu exports: the GaussianMemory fusion step on raw device pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gaussocc/memory_math.h"

namespace gaussocc {

// Fuses num_targets targets described by `args` (layout in ops/memory.cpp), one thread each.
template <typename T>
void launch_memory_fuse(const FuseArgs<T>& args, int64_t num_targets, cudaStream_t stream);

}  // namespace gaussocc
