// Torch adapters of the radius_index CUDA kernels.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "cuda/radius_index.h"
#include "ops/radius_index.h"

namespace gaussocc {
namespace {

void radius_index_insert_cuda(const at::Tensor& table_keys, const at::Tensor& table_heads,
                              const at::Tensor& node_slot, const at::Tensor& node_next, const at::Tensor& slot_node,
                              const at::Tensor& slot_cell, const at::Tensor& node_count, const at::Tensor& points,
                              const at::Tensor& slots, double cell_size, bool moved_only) {
  TORCH_CHECK(points.is_cuda(), "radius_index_insert_cuda: points must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(points.device());
  check_radius_index_state("radius_index_insert", table_keys, table_heads, node_slot, node_next, slot_node, points,
                           cell_size);
  check_radius_index_insert(slot_cell, node_count, slot_node, slots);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "radius_index_insert_cuda", [&] {
    launch_radius_index_insert<scalar_t>(
        table_keys.data_ptr<int64_t>(), table_heads.data_ptr<int64_t>(), table_keys.numel(),
        node_slot.data_ptr<int64_t>(), node_next.data_ptr<int64_t>(), slot_node.data_ptr<int64_t>(),
        slot_cell.data_ptr<int64_t>(), node_count.data_ptr<int64_t>(), points.data_ptr<scalar_t>(),
        slots.data_ptr<int64_t>(), slots.numel(), cell_size, moved_only, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> radius_index_query_cuda(const at::Tensor& table_keys,
                                                            const at::Tensor& table_heads, const at::Tensor& node_slot,
                                                            const at::Tensor& node_next, const at::Tensor& slot_node,
                                                            const at::Tensor& points, const at::Tensor& queries,
                                                            double cell_size, double radius, int64_t max_neighbors) {
  TORCH_CHECK(points.is_cuda(), "radius_index_query_cuda: points must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(points.device());
  const IndexQuery out = radius_index_query_outputs(table_keys, table_heads, node_slot, node_next, slot_node,
                                                    points, queries, cell_size, radius, max_neighbors);
  if (out.empty) return {out.idx, out.dist};
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(queries.scalar_type(), "radius_index_query_cuda", [&] {
    launch_radius_index_query<scalar_t>(
        table_keys.data_ptr<int64_t>(), table_heads.data_ptr<int64_t>(), table_keys.numel(),
        node_slot.data_ptr<int64_t>(), node_next.data_ptr<int64_t>(), slot_node.data_ptr<int64_t>(),
        points.data_ptr<scalar_t>(), queries.data_ptr<scalar_t>(), queries.size(0), cell_size, radius,
        max_neighbors, out.idx.data_ptr<int64_t>(), out.dist.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out.idx, out.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) {
  m.impl("radius_index_insert", &radius_index_insert_cuda);
  m.impl("radius_index_query", &radius_index_query_cuda);
}

}  // namespace gaussocc
