// The CUDA toolkit version the kernels were compiled with (see build_info.cc).

#include <cuda_runtime_api.h>

extern "C" int TfkafCudaToolkitVersion() { return CUDART_VERSION; }
