// A bad argument to an op is refused with the same musiq::Error, word for word, by its CPU
// twin and, in CUDA builds, by its CUDA twin (base/op_arguments.h). Both check before any
// work, so the CUDA twin runs here without a GPU: no device memory, handle or stream.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/resize_plan.h"
#include "cpu/ops.h"
#ifdef MUSIQ_HAS_CUDA
#include "kernels/ops.cuh"
#endif

namespace musiq {
namespace {

// `call` throws a musiq::Error (ErrorKind::kError, as every front end reports it) saying
// `message`.
void expect_refused(const std::string& message, const std::function<void()>& call) {
  try {
    call();
  } catch (...) {
    const ErrorReport r = describe_exception(std::current_exception());
    EXPECT_EQ(r.kind, ErrorKind::kError) << r.message;
    EXPECT_EQ(r.message, message);
    return;
  }
  ADD_FAILURE() << "not refused; expected: " << message;
}

struct BadConv {
  int k, stride;
  bool columns;
  std::string message;
};

TEST(OpArguments, Conv2dRefusesTheSameOnEveryDevice) {
  const std::vector<BadConv> cases = {
      {1, 2, true, "conv2d: a stride of 2 is larger than the 1x1 kernel"},
      {3, 4, true, "conv2d: a stride of 4 is larger than the 3x3 kernel"},
      {3, 1, false, "conv2d: a 3x3 conv needs a columns buffer"},
  };
  for (const BadConv& c : cases) {
    const int h = 8, out_hw = 2;
    const std::vector<float> in(size_t(h) * h, 1.0f), kernel(size_t(c.k) * c.k, 1.0f);
    std::vector<float> columns(size_t(out_hw) * out_hw * h * h), out(size_t(out_hw) * out_hw);
    float* cols = c.columns ? columns.data() : nullptr;
    const Conv2dShape shape{.batch = 1, .height = h, .width = h, .in_channels = 1,
                            .kernel = c.k, .stride = c.stride, .out_channels = 1,
                            .out_height = out_hw, .out_width = out_hw};
    expect_refused(c.message,
                   [&] { cpu::conv2d(in.data(), shape, kernel.data(), cols, out.data()); });
#ifdef MUSIQ_HAS_CUDA
    expect_refused(c.message, [&] {
      cuda::conv2d(in.data(), shape, kernel.data(), cols, out.data(), nullptr, nullptr);
    });
#endif
  }
}

struct BadResize {
  int plan_h, plan_w, channels;
  std::string message;
};

TEST(OpArguments, GaussianResizeRefusesTheSameOnEveryDevice) {
  const int h = 6, w = 5;
  const std::vector<BadResize> cases = {
      {7, 5, 3, "gaussian_resize: plans for 7x5 given an image of 6x5"},
      {6, 4, 3, "gaussian_resize: plans for 6x4 given an image of 6x5"},
      {6, 5, 0, "gaussian_resize: 1 to 4 channels, not 0"},
      {6, 5, 5, "gaussian_resize: 1 to 4 channels, not 5"},
  };
  for (const BadResize& c : cases) {
    const ResizePlan rows = gaussian_resize_plan(c.plan_h, 3);
    const ResizePlan cols = gaussian_resize_plan(c.plan_w, 3);
    const std::vector<float> in(size_t(h) * w * 5, 1.0f);
    std::vector<float> tmp(size_t(h) * w * 5), out(size_t(h) * w * 5);
    expect_refused(c.message, [&] {
      cpu::gaussian_resize(in.data(), h, w, c.channels, rows, cols, tmp.data(), out.data());
    });
#ifdef MUSIQ_HAS_CUDA
    const cuda::DeviceResizePlan d_rows{rows.in_size, rows.out_size, rows.span, nullptr, nullptr};
    const cuda::DeviceResizePlan d_cols{cols.in_size, cols.out_size, cols.span, nullptr, nullptr};
    expect_refused(c.message, [&] {
      cuda::gaussian_resize(in.data(), h, w, c.channels, d_rows, d_cols, tmp.data(), out.data(),
                            nullptr);
    });
#endif
  }
}

}  // namespace
}  // namespace musiq
