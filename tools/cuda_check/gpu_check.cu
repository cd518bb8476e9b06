// GPU modes: `devices`, `check` (every GPU functor against the reference)
// and `determinism` (run-to-run behaviour of the reductions).
//
// Each case uploads its inputs, fills every output with a sentinel value
// (and the scratch accumulators with NaN bytes, which the functors must
// clear), calls the functor on a non-blocking stream the way the OpKernels
// do (LaunchBackward in cc/kernels/op_util.h: scratch of ScratchSize
// accumulators, rows * K; none for the spline's float/double, which then
// accumulate in dcoefficients), synchronises, and compares every output
// element with the reference. Guard bytes around every buffer must be intact
// afterwards.

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <type_traits>

#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/spline_kernels.h"
#include "tools/cuda_check/check.h"
#include "tools/cuda_check/gpu.h"

namespace cuda_check {

std::string g_context = "startup";

void CudaFail(cudaError_t error, const char* call, const char* file,
              int line) {
  std::fprintf(stderr,
               "CUDA ERROR %s (%s) from %s at %s:%d\n  while: %s\n",
               cudaGetErrorName(error), cudaGetErrorString(error), call, file,
               line, g_context.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::exit(2);
}

bool SelectDevice(bool quiet) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("no CUDA device: %s\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
    return false;
  }
  CUDA_OK(cudaSetDevice(0));
  if (!quiet) {
    cudaDeviceProp p;
    CUDA_OK(cudaGetDeviceProperties(&p, 0));
    int runtime = 0, driver = 0;
    CUDA_OK(cudaRuntimeGetVersion(&runtime));
    CUDA_OK(cudaDriverGetVersion(&driver));
    std::printf("device 0: %s, compute capability %d.%d, %d SMs, %.1f GiB, "
                "runtime %d, driver %d\n",
                p.name, p.major, p.minor, p.multiProcessorCount,
                double(p.totalGlobalMem) / (1 << 30), runtime, driver);
  }
  return true;
}

// The buffer operations use the legacy default stream, which does not
// order against the non-blocking stream the functors run on (and a pageable
// host-to-device cudaMemcpy may return before its DMA has landed): each one
// ends with a device synchronisation.
DevBuf::DevBuf(int64 n, size_t elem, const char* name) : name_(name) {
  bytes_ = static_cast<size_t>(std::max<int64>(n, 0)) * elem;
  CUDA_OK(cudaMalloc(&base_, bytes_ + 2 * kGuardBytes));
  CUDA_OK(cudaMemset(base_, kGuardByte, bytes_ + 2 * kGuardBytes));
  CUDA_OK(cudaDeviceSynchronize());
}

DevBuf::~DevBuf() {
  const cudaError_t e = cudaFree(base_);
  if (e != cudaSuccess) CudaFail(e, "cudaFree", __FILE__, __LINE__);
}

void DevBuf::Upload(const void* host) {
  if (bytes_ > 0) {
    CUDA_OK(cudaMemcpy(ptr(), host, bytes_, cudaMemcpyHostToDevice));
  }
  CUDA_OK(cudaDeviceSynchronize());
}

void DevBuf::Download(void* host) const {
  CUDA_OK(cudaDeviceSynchronize());
  if (bytes_ > 0) {
    CUDA_OK(cudaMemcpy(host, ptr(), bytes_, cudaMemcpyDeviceToHost));
  }
}

void DevBuf::CopyFrom(const DevBuf& other) {
  if (other.bytes_ != bytes_) {
    std::fprintf(stderr, "internal error: copy %s -> %s of different sizes\n",
                 other.name_.c_str(), name_.c_str());
    std::exit(3);
  }
  if (bytes_ > 0) {
    CUDA_OK(cudaMemcpy(ptr(), other.ptr(), bytes_, cudaMemcpyDeviceToDevice));
  }
  CUDA_OK(cudaDeviceSynchronize());
}

void DevBuf::FillBytes(unsigned char value) {
  if (bytes_ > 0) CUDA_OK(cudaMemset(ptr(), value, bytes_));
  CUDA_OK(cudaDeviceSynchronize());
}

bool DevBuf::GuardsIntact(std::string* why) const {
  CUDA_OK(cudaDeviceSynchronize());
  unsigned char head[kGuardBytes], tail[kGuardBytes];
  CUDA_OK(cudaMemcpy(head, base_, kGuardBytes, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(tail, static_cast<char*>(base_) + kGuardBytes + bytes_,
                     kGuardBytes, cudaMemcpyDeviceToHost));
  for (size_t j = 0; j < kGuardBytes; ++j) {
    if (head[j] != kGuardByte) {
      *why = name_ + ": byte " + std::to_string(j) + " before the buffer written";
      return false;
    }
    if (tail[j] != kGuardByte) {
      *why = name_ + ": byte " + std::to_string(j) + " after the buffer written";
      return false;
    }
  }
  return true;
}

int RunDevices() {
  g_context = "listing devices";
  return SelectDevice() ? 0 : 4;
}

namespace {

// Buffer arrangements the ops use or allow.
enum class Alias {
  kNone,
  kInPlace,      // spline forward: y is x's buffer
  kDxIsDy,       // spline backward: dx is dy's buffer
  kDxIsX,        // spline backward: dx is x's buffer
  kSeparateAcc,  // spline float/double: accumulator not aliasing dcoef
};

const char* AliasName(Alias a) {
  switch (a) {
    case Alias::kNone: return "";
    case Alias::kInPlace: return "[y=x]";
    case Alias::kDxIsDy: return "[dx=dy]";
    case Alias::kDxIsX: return "[dx=x]";
    case Alias::kSeparateAcc: return "[separate accumulator]";
  }
  return "";
}

template <typename S>
class Runner {
 public:
  using Acc = typename Store<S>::Acc;

  Runner(const Case& c, const Inputs& in, cudaStream_t stream)
      : c_(c),
        stream_(stream),
        nx_(c.XSize()),
        ny_(c.YSize()),
        na_(c.Rows() * c.K()),
        x_(nx_, sizeof(S), "x"),
        alpha_(na_, sizeof(S), "alpha"),
        dy_(ny_, sizeof(S), "dy"),
        y_(ny_, sizeof(S), "y"),
        dx_(nx_, sizeof(S), "dx"),
        da_(na_, sizeof(S), "dalpha"),
        scratch_(std::max<int64>(na_, 1), sizeof(Acc), "scratch") {
    x_.Upload(EncodeAll<S>(in.x).data());
    alpha_.Upload(EncodeAll<S>(in.alpha).data());
    dy_.Upload(EncodeAll<S>(in.dy).data());
    sentinel_ = Store<S>::Enc(RoundTo(c.dtype, -12345.678));
    kaf_.layout = c.layout;
    kaf_.num_centres = c.D;
    kaf_.boundary = c.boundary;
    kaf_.gamma = c.gamma;
    kaf_.kernel = c.kernel;
    spline_.layout = c.layout;
    spline_.knots = c.D;
    spline_.x_min = c.x_min;
    spline_.scale = c.SplineScale();
    device_.stream = stream;
  }

  int functor_errors() const { return functor_errors_; }

  std::vector<S> Forward(Alias alias) {
    Fill(&y_, ny_);
    const S* x = x_.as<S>();
    S* y = y_.as<S>();
    if (alias == Alias::kInPlace) {
      y_.CopyFrom(x_);
      x = y;
    }
    const S* a = alpha_.as<S>();
    const char* err = nullptr;
    const char* name = "";
    switch (c_.op) {
      case Op::kKaf:
        name = "functor::KafForward<GpuDevice>";
        err = tfkaf::functor::KafForward<tfkaf::GpuDevice, S>()(device_, kaf_,
                                                               x, a, y);
        break;
      case Op::kKaf2d:
        name = "functor::Kaf2dForward<GpuDevice>";
        err = tfkaf::functor::Kaf2dForward<tfkaf::GpuDevice, S>()(device_, kaf_,
                                                                 x, a, y);
        break;
      case Op::kSpline:
        name = "functor::SplineForward<GpuDevice>";
        err = tfkaf::functor::SplineForward<tfkaf::GpuDevice, S>()(
            device_, spline_, x, a, y);
        break;
    }
    Finish(err, name);
    std::vector<S> out(ny_);
    y_.Download(out.data());
    return out;
  }

  void Backward(bool deterministic, Alias alias, std::vector<S>* dx_out,
                std::vector<S>* da_out) {
    Fill(&dx_, nx_);
    Fill(&da_, na_);
    scratch_.FillBytes(0xFF);  // NaN in every accumulator type
    const S* dy = dy_.as<S>();
    const S* x = x_.as<S>();
    S* dx = dx_.as<S>();
    if (alias == Alias::kDxIsDy) {
      dx_.CopyFrom(dy_);
      dy = dx;
    } else if (alias == Alias::kDxIsX) {
      dx_.CopyFrom(x_);
      x = dx;
    }
    const S* a = alpha_.as<S>();
    S* da = da_.as<S>();
    Acc* acc = scratch_.as<Acc>();
    const char* err = nullptr;
    const char* name = "";
    switch (c_.op) {
      case Op::kKaf:
        name = "functor::KafBackward<GpuDevice>";
        err = tfkaf::functor::KafBackward<tfkaf::GpuDevice, S>()(
            device_, kaf_, dy, x, a, dx, da, acc);
        break;
      case Op::kKaf2d:
        name = "functor::Kaf2dBackward<GpuDevice>";
        err = tfkaf::functor::Kaf2dBackward<tfkaf::GpuDevice, S>()(
            device_, kaf_, dy, x, a, dx, da, acc);
        break;
      case Op::kSpline: {
        name = "functor::SplineBackward<GpuDevice>";
        // As the OpKernel: float and double need no scratch (ScratchSize
        // 0) and accumulate in dcoefficients.
        if (std::is_same<S, Acc>::value && alias != Alias::kSeparateAcc) {
          acc = nullptr;
        }
        tfkaf::SplineParams p = spline_;
        p.deterministic = deterministic;
        err = tfkaf::functor::SplineBackward<tfkaf::GpuDevice, S>()(
            device_, p, dy, x, a, dx, da, acc);
        break;
      }
    }
    Finish(err, name);
    dx_out->resize(nx_);
    da_out->resize(na_);
    dx_.Download(dx_out->data());
    da_.Download(da_out->data());
  }

  bool GuardsIntact(std::string* why) const {
    for (const DevBuf* b : {&x_, &alpha_, &dy_, &y_, &dx_, &da_, &scratch_}) {
      if (!b->GuardsIntact(why)) return false;
    }
    return true;
  }

 private:
  void Fill(DevBuf* b, int64 n) {
    std::vector<S> s(static_cast<size_t>(n), sentinel_);
    b->Upload(s.data());
  }

  void Finish(const char* err, const char* functor) {
    if (err != nullptr) {
      std::printf("FUNCTOR ERROR %s: %s returned \"%s\"\n", c_.name.c_str(),
                  functor, err);
      ++functor_errors_;
    }
    CUDA_OK(cudaStreamSynchronize(stream_));
    CUDA_OK(cudaGetLastError());
  }

  const Case& c_;
  cudaStream_t stream_;
  int64 nx_, ny_, na_;
  DevBuf x_, alpha_, dy_, y_, dx_, da_, scratch_;
  S sentinel_;
  tfkaf::KafConfig kaf_;
  tfkaf::SplineParams spline_;
  tfkaf::GpuDevice device_;
  int functor_errors_ = 0;
};

struct Tally {
  int64 cases = 0, compared = 0, mismatches = 0, failures = 0;
  double max_ratio = 0.0;
  std::string worst;
};

void Account(const CompareStats& st, Tally* t) {
  t->compared += st.compared;
  t->mismatches += st.mismatches;
  if (st.max_ratio > t->max_ratio) {
    t->max_ratio = st.max_ratio;
    t->worst = st.worst;
  }
}

template <typename S>
void CheckCase(const Case& c, const Inputs& in, const Expected& ex,
               cudaStream_t stream, int max_print, Tally* t) {
  Runner<S> r(c, in, stream);
  auto where_x = [&](int64 j) { return WhereX(c, in, j); };
  auto where_y = [&](int64 j) { return WhereY(c, in, j); };
  auto where_a = [&](int64 j) { return WhereAlpha(c, j); };
  CompareStats st;
  auto forward = [&](Alias alias) {
    g_context = c.name + " forward" + AliasName(alias);
    const std::string label = std::string("y") + AliasName(alias);
    CompareArray(c, label.c_str(), DecodeAll(r.Forward(alias)), ex.y, where_y,
                 max_print, &st);
  };
  auto backward = [&](bool det, Alias alias) {
    g_context = c.name + " backward" + (det ? "[deterministic]" : "") +
                AliasName(alias);
    std::vector<S> dx, da;
    r.Backward(det, alias, &dx, &da);
    const std::string tag =
        std::string(det ? "[deterministic]" : "") + AliasName(alias);
    const std::string dx_label = "dx" + tag;
    const std::string da_label =
        (c.op == Op::kSpline ? "dcoefficients" : "dalpha") + tag;
    CompareArray(c, dx_label.c_str(), DecodeAll(dx), ex.dx, where_x,
                 max_print, &st);
    CompareArray(c, da_label.c_str(), DecodeAll(da), ex.dalpha, where_a,
                 max_print, &st);
  };
  forward(Alias::kNone);
  if (c.op == Op::kSpline) {
    for (bool det : {false, true}) backward(det, Alias::kNone);
    if (c.alias_variants) {
      forward(Alias::kInPlace);
      for (bool det : {false, true}) {
        backward(det, Alias::kDxIsDy);
        backward(det, Alias::kDxIsX);
      }
      if (std::is_same<S, typename Store<S>::Acc>::value) {
        backward(false, Alias::kSeparateAcc);
      }
    }
  } else {
    backward(false, Alias::kNone);
  }
  Account(st, t);
  if (st.mismatches) {
    std::printf("FAIL %s: %lld of %lld values outside the reference set\n",
                c.name.c_str(), static_cast<long long>(st.mismatches),
                static_cast<long long>(st.compared));
  }
  std::string why;
  if (!r.GuardsIntact(&why)) {
    std::printf("FAIL %s: out-of-bounds write: %s\n", c.name.c_str(),
                why.c_str());
    ++t->failures;
  }
  if (r.functor_errors()) {
    t->failures += r.functor_errors();
  }
  if (st.mismatches || r.functor_errors()) ++t->failures;
}

template <typename F>
void Dispatch(DType t, F&& f) {
  switch (t) {
    case DType::kF32: f(float()); break;
    case DType::kF64: f(double()); break;
    case DType::kF16: f(tfkaf::HalfBits()); break;
    case DType::kBF16: f(tfkaf::BFloat16Bits()); break;
  }
}

}  // namespace

int RunGpuCheck(bool small, const std::string& filter, int max_print) {
  if (!SelectDevice()) return 4;
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, Tally> tallies;
  Tally total;
  int64 run = 0;
  for (const Case& c : MakeCases(small)) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    ++run;
    g_context = c.name + " (reference)";
    const Inputs in = MakeInputs(c);
    const Expected ex = Reference(c, in);
    Tally& t = tallies[OpName(c) + " " + DTypeName(c.dtype)];
    ++t.cases;
    Dispatch(c.dtype, [&](auto tag) {
      CheckCase<decltype(tag)>(c, in, ex, stream, max_print, &t);
    });
  }
  CUDA_OK(cudaStreamDestroy(stream));
  // Destroys the context: compute-sanitizer's leak check runs here.
  g_context = "cudaDeviceReset";
  CUDA_OK(cudaDeviceReset());
  const double secs = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
  std::printf("\n%-22s %6s %11s %10s %8s  %s\n", "op dtype", "cases", "values",
              "mismatch", "failed", "worst error / tolerance");
  for (const auto& kv : tallies) {
    const Tally& t = kv.second;
    std::printf("%-22s %6lld %11lld %10lld %8lld  %.3f  %s\n", kv.first.c_str(),
                static_cast<long long>(t.cases),
                static_cast<long long>(t.compared),
                static_cast<long long>(t.mismatches),
                static_cast<long long>(t.failures), t.max_ratio,
                t.worst.c_str());
    total.cases += t.cases;
    total.compared += t.compared;
    total.mismatches += t.mismatches;
    total.failures += t.failures;
  }
  const bool ok = total.mismatches == 0 && total.failures == 0 && run > 0;
  std::printf("check%s: %lld cases, %lld values compared, %lld mismatches, "
              "%lld failed cases, %.1f s: %s\n",
              small ? " --small" : "", static_cast<long long>(total.cases),
              static_cast<long long>(total.compared),
              static_cast<long long>(total.mismatches),
              static_cast<long long>(total.failures), secs,
              ok ? "PASSED" : "FAILED");
  if (run == 0) std::printf("no case matched the filter\n");
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------
// Determinism

namespace {

template <typename S>
bool SameBits(const std::vector<S>& a, const std::vector<S>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(S)) == 0);
}

template <typename S>
int64 DifferingEntries(const std::vector<S>& a, const std::vector<S>& b) {
  int64 n = 0;
  for (size_t j = 0; j < a.size(); ++j) {
    n += std::memcmp(&a[j], &b[j], sizeof(S)) != 0;
  }
  return n;
}

// Returns the number of failures.
template <typename S>
int DeterminismCase(const Case& c, int runs, cudaStream_t stream) {
  g_context = c.name + " (reference)";
  const Inputs in = MakeInputs(c);
  const Expected ex = Reference(c, in);
  Runner<S> r(c, in, stream);
  int failures = 0;
  auto where_x = [&](int64 j) { return WhereX(c, in, j); };
  auto where_a = [&](int64 j) { return WhereAlpha(c, j); };

  g_context = c.name + " forward (determinism)";
  const std::vector<S> y0 = r.Forward(Alias::kNone);
  for (int k = 1; k < runs; ++k) {
    if (!SameBits(y0, r.Forward(Alias::kNone))) {
      std::printf("FAIL %s: forward output differs between runs (one thread "
                  "per element: expected bitwise identical)\n",
                  c.name.c_str());
      ++failures;
      break;
    }
  }
  std::vector<bool> paths = {false};
  if (c.op == Op::kSpline) paths.push_back(true);
  for (bool det : paths) {
    const char* path = det ? "deterministic" : "atomics";
    g_context = c.name + " backward " + path + " (determinism)";
    std::vector<S> dx0, da0, dx, da;
    r.Backward(det, Alias::kNone, &dx0, &da0);
    CompareStats st;
    CompareArray(c, "dx", DecodeAll(dx0), ex.dx, where_x, 5, &st);
    CompareArray(c, "dalpha", DecodeAll(da0), ex.dalpha, where_a, 5, &st);
    int64 differing = 0;
    bool dx_same = true, da_same = true;
    for (int k = 1; k < runs; ++k) {
      r.Backward(det, Alias::kNone, &dx, &da);
      dx_same = dx_same && SameBits(dx0, dx);
      da_same = da_same && SameBits(da0, da);
      differing = std::max(differing, DifferingEntries(da0, da));
      // Every run must be as close to the reference as the first.
      CompareArray(c, "dalpha", DecodeAll(da), ex.dalpha, where_a, 5, &st);
    }
    if (st.mismatches) {
      std::printf("FAIL %s [%s]: %lld values outside the reference set\n",
                  c.name.c_str(), path, static_cast<long long>(st.mismatches));
      ++failures;
    }
    if (!dx_same) {
      std::printf("FAIL %s [%s]: dx differs between runs (elementwise: "
                  "expected bitwise identical)\n",
                  c.name.c_str(), path);
      ++failures;
    }
    if (det && !da_same) {
      std::printf("FAIL %s [deterministic]: dcoefficients differ between "
                  "runs (documented: bitwise identical)\n",
                  c.name.c_str());
      ++failures;
    }
    std::printf("%-58s %-13s %d runs: dx %s; %s %s (%lld of %zu entries "
                "differ; within tolerance: %s)\n",
                c.name.c_str(), path, runs,
                dx_same ? "identical" : "DIFFERS",
                c.op == Op::kSpline ? "dcoefficients" : "dalpha",
                da_same ? "bitwise identical" : "differ in the last bits",
                static_cast<long long>(differing), da0.size(),
                st.mismatches ? "NO" : "yes");
  }
  std::string why;
  if (!r.GuardsIntact(&why)) {
    std::printf("FAIL %s: out-of-bounds write: %s\n", c.name.c_str(),
                why.c_str());
    ++failures;
  }
  return failures + r.functor_errors();
}

}  // namespace

int RunDeterminism(bool small, int runs) {
  if (!SelectDevice()) return 4;
  const auto t0 = std::chrono::steady_clock::now();
  int failures = 0;
  std::printf("The atomics paths (KAF, 2D-KAF, spline by default) may differ "
              "in the last bits from run to run but must stay within the "
              "reference tolerance; the spline's deterministic path must be "
              "bitwise identical.\n");
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (const Case& c : MakeDeterminismCases(small)) {
    Dispatch(c.dtype, [&](auto tag) {
      failures += DeterminismCase<decltype(tag)>(c, runs, stream);
    });
  }
  CUDA_OK(cudaStreamDestroy(stream));
  g_context = "cudaDeviceReset";
  CUDA_OK(cudaDeviceReset());
  const double secs = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
  std::printf("determinism: %d failures, %.1f s: %s\n", failures, secs,
              failures ? "FAILED" : "PASSED");
  return failures ? 1 : 0;
}

}  // namespace cuda_check
