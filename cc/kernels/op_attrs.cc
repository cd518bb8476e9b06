#include "cc/kernels/op_attrs.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "cc/kernels/op_util.h"

namespace tfkaf {
namespace {

absl::Status ParseKernel(const std::string& name, KafKernel* kernel) {
  if (name == "gaussian") {
    *kernel = KafKernel::kGaussian;
  } else if (name == "relu") {
    *kernel = KafKernel::kRelu;
  } else if (name == "softplus") {
    *kernel = KafKernel::kSoftplus;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown KAF kernel '", name,
                     "': expected one of 'gaussian', 'relu', 'softplus'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadKafKernelAttrs(tensorflow::OpKernelConstruction* context,
                                bool two_d, KafAttrs* attrs,
                                KafKernel* kernel) {
  TF_RETURN_IF_ERROR(ReadKafAttrs(context, two_d, attrs));
  TF_RETURN_IF_ERROR(StatusOf(CheckKafAttrs(*attrs)));
  *kernel = KafKernel::kGaussian;
  if (two_d) return absl::OkStatus();
  std::string name;
  TF_RETURN_IF_ERROR(context->GetAttr("kernel", &name));
  return ParseKernel(name, kernel);
}

KafConfig KafConfigOf(const KafAttrs& attrs, KafKernel kernel,
                      const KafFacts& facts) {
  KafConfig config;
  config.layout = facts.layout;
  config.num_centres = facts.num_centres;
  config.boundary = attrs.boundary;
  config.gamma = facts.gamma;
  config.kernel = kernel;
  return config;
}

SplineParams SplineParamsOf(const SplineAttrs& attrs,
                            const SplineFacts& facts) {
  SplineParams params;
  params.layout = facts.layout;
  params.knots = facts.knots;
  params.x_min = static_cast<double>(attrs.x_min);
  params.scale =
      static_cast<double>(facts.knots - 1) /
      (static_cast<double>(attrs.x_max) - static_cast<double>(attrs.x_min));
  return params;
}

}  // namespace tfkaf
