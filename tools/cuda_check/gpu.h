// GPU-side helpers shared by gpu_check.cu and bench.cu: checked CUDA calls,
// device buffers with guard bytes, and the element-type traits of the GPU
// functors (float, double, HalfBits, BFloat16Bits).

#ifndef TFKAF_TOOLS_CUDA_CHECK_GPU_H_
#define TFKAF_TOOLS_CUDA_CHECK_GPU_H_

#include <cuda_runtime.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cc/kernels/common.h"
#include "tools/cuda_check/check.h"

namespace cuda_check {

// What the driver is doing (printed with any CUDA error).
extern std::string g_context;

// Every CUDA runtime call goes through CUDA_OK: on error it prints the call,
// file:line, the error name and text and what was being checked, and exits
// with status 2 (a sticky error leaves the context unusable anyway).
void CudaFail(cudaError_t error, const char* call, const char* file,
              int line);
#define CUDA_OK(call)                                        \
  do {                                                       \
    const cudaError_t cuda_check_error_ = (call);            \
    if (cuda_check_error_ != cudaSuccess) {                  \
      ::cuda_check::CudaFail(cuda_check_error_, #call,       \
                             __FILE__, __LINE__);            \
    }                                                        \
  } while (false)

// Prints the device and returns false (with a message) if there is none.
bool SelectDevice(bool quiet = false);

// Device memory for n elements of `elem` bytes with `kGuardBytes` of a fixed
// pattern on both sides, to catch out-of-bounds writes without a sanitizer.
class DevBuf {
 public:
  static constexpr size_t kGuardBytes = 256;
  static constexpr unsigned char kGuardByte = 0xA5;

  DevBuf(int64 n, size_t elem, const char* name);
  ~DevBuf();
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;

  void* ptr() const { return static_cast<char*>(base_) + kGuardBytes; }
  template <typename S>
  S* as() const {
    return static_cast<S*>(ptr());
  }
  size_t bytes() const { return bytes_; }
  void Upload(const void* host);
  void Download(void* host) const;
  void CopyFrom(const DevBuf& other);  // same size, device to device
  void FillBytes(unsigned char value);
  // False (and a description) if a guard byte changed.
  bool GuardsIntact(std::string* why) const;

 private:
  void* base_ = nullptr;
  size_t bytes_ = 0;
  std::string name_;
};

template <typename S>
struct Store;
template <>
struct Store<float> {
  using Acc = float;
  static float Enc(double v) { return static_cast<float>(v); }
  static double Dec(float v) { return v; }
};
template <>
struct Store<double> {
  using Acc = double;
  static double Enc(double v) { return v; }
  static double Dec(double v) { return v; }
};
template <>
struct Store<tfkaf::HalfBits> {
  using Acc = float;
  static tfkaf::HalfBits Enc(double v) { return tfkaf::HalfBits{EncodeHalf(v)}; }
  static double Dec(tfkaf::HalfBits v) { return DecodeHalf(v.bits); }
};
template <>
struct Store<tfkaf::BFloat16Bits> {
  using Acc = float;
  static tfkaf::BFloat16Bits Enc(double v) {
    return tfkaf::BFloat16Bits{EncodeBFloat16(v)};
  }
  static double Dec(tfkaf::BFloat16Bits v) { return DecodeBFloat16(v.bits); }
};

template <typename S>
std::vector<S> EncodeAll(const std::vector<double>& v) {
  std::vector<S> out(v.size());
  for (size_t j = 0; j < v.size(); ++j) out[j] = Store<S>::Enc(v[j]);
  return out;
}

template <typename S>
std::vector<double> DecodeAll(const std::vector<S>& v) {
  std::vector<double> out(v.size());
  for (size_t j = 0; j < v.size(); ++j) out[j] = Store<S>::Dec(v[j]);
  return out;
}

}  // namespace cuda_check

#endif  // TFKAF_TOOLS_CUDA_CHECK_GPU_H_
