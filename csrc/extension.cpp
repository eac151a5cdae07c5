// The anchor of the `gaussocc` op namespace and, in the ahead-of-time build, the Python module
// object of gaussocc_ops._C. Every op file adds its schemas with TORCH_LIBRARY_FRAGMENT(gaussocc, m);
// kernels are registered per device with TORCH_LIBRARY_IMPL(gaussocc, CPU|CUDA, m).
//
// The just-in-time build (gaussocc_ops/_jit.py) loads the library with torch.ops.load_library,
// not as a Python module; it defines GAUSSOCC_NO_PYTHON_MODULE, so it needs no Python headers.
#include <torch/library.h>

TORCH_LIBRARY(gaussocc, m) {}

#ifndef GAUSSOCC_NO_PYTHON_MODULE
#include <Python.h>

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
#endif  // GAUSSOCC_NO_PYTHON_MODULE
