// The Python module object of gaussocc_ops._C and the anchor of the `gaussocc` op namespace.
// Every op file adds its schemas with TORCH_LIBRARY_FRAGMENT(gaussocc, m); kernels are
// registered per device with TORCH_LIBRARY_IMPL(gaussocc, CPU|CUDA, m).
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(gaussocc, m) {}

static PyModuleDef gaussocc_module = {PyModuleDef_HEAD_INIT, "_C", "gaussocc-ops compiled kernels", -1,
                                      nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* module = PyModule_Create(&gaussocc_module);
  if (module == nullptr) return nullptr;
#ifdef GAUSSOCC_WITH_CUDA
  PyModule_AddIntConstant(module, "with_cuda", 1);
#else
  PyModule_AddIntConstant(module, "with_cuda", 0);
#endif
  return module;
}
