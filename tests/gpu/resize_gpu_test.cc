// cuda::gaussian_resize and cuda::extract_patches against their CPU ops, bit for bit.
// Both GPU kernels do the CPU's arithmetic operation by operation (resize: w * v products
// added in tap order with _rn intrinsics, the CPU compiled with -ffp-contract=off; patches:
// copies), so the bound is 0 abs + 0 rel. Shapes: MUSIQ's real ones (a 4032x3024 photo to
// its 224 scale, i.e. 224x168; 31x33 upscaled to 384), and a 1x1 image to 224x224.
#include <cstdint>
#include <vector>

#include "base/resize_plan.h"
#include "cpu/ops.h"
#include "engine/preprocess/preprocess.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

// A ResizePlan and its device copy.
struct UploadedPlan {
  explicit UploadedPlan(const ResizePlan& plan) : starts(plan.starts), weights(plan.weights) {
    device = {plan.in_size, plan.out_size, plan.span, starts.get(), weights.get()};
  }
  DeviceBuffer<int32_t> starts;
  DeviceBuffer<float> weights;
  cuda::DeviceResizePlan device;
};

struct ResizeCase {
  int in_h, in_w, out_h, out_w;
};

class ResizeGpuTest : public ::testing::TestWithParam<ResizeCase> {};

TEST_P(ResizeGpuTest, BitIdenticalToCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const ResizeCase c = GetParam();
  const auto image = test::random_floats(size_t(c.in_h) * c.in_w * 3, 31);
  const ResizePlan rows = gaussian_resize_plan(c.in_h, c.out_h);
  const ResizePlan cols = gaussian_resize_plan(c.in_w, c.out_w);
  std::vector<float> tmp(size_t(c.out_h) * c.in_w * 3), want(size_t(c.out_h) * c.out_w * 3);
  cpu::gaussian_resize(image.data(), c.in_h, c.in_w, 3, rows, cols, tmp.data(), want.data());

  gpu_test::Stream stream;
  UploadedPlan d_rows(rows), d_cols(cols);
  DeviceBuffer<float> d_in(image), d_tmp(tmp.size()), d_out(want.size());
  cuda::gaussian_resize(d_in.get(), c.in_h, c.in_w, 3, d_rows.device, d_cols.device,
                        d_tmp.get(), d_out.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_equal(d_tmp.download(), tmp));
  EXPECT_TRUE(test::all_equal(d_out.download(), want));
  EXPECT_TRUE(d_tmp.guard_intact());
  EXPECT_TRUE(d_out.guard_intact());
}

ResizeCase to_scale(int h, int w, int longer_side) {
  const auto [rh, rw] = resized_shape(h, w, longer_side);
  return {h, w, rh, rw};
}

INSTANTIATE_TEST_SUITE_P(Shapes, ResizeGpuTest,
                         ::testing::Values(ResizeCase{1, 1, 224, 224}, to_scale(31, 33, 384),
                                           to_scale(4032, 3024, 224), to_scale(768, 1024, 384),
                                           ResizeCase{5, 7, 5, 7}),
                         [](const auto& info) {
                           const ResizeCase& c = info.param;
                           return test::name(c.in_h, "x", c.in_w, "_to_", c.out_h, "x",
                                                 c.out_w);
                         });

struct PatchCase {
  int h, w;
};

class PatchesGpuTest : public ::testing::TestWithParam<PatchCase> {};

TEST_P(PatchesGpuTest, BitIdenticalToCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const PatchCase c = GetParam();
  const ScaleGeometry g = scale_geometry(c.h, c.w, 32, -1);
  const auto image = test::random_floats(size_t(c.h) * c.w * 3, 32);
  std::vector<float> want(size_t(g.count_h) * g.count_w * 32 * 32 * 3);
  cpu::extract_patches(image.data(), c.h, c.w, 32, g.count_h, g.count_w, g.pad_top, g.pad_left,
                       want.data());
  gpu_test::Stream stream;
  DeviceBuffer<float> d_image(image), d_out(want.size());
  cuda::extract_patches(d_image.get(), c.h, c.w, 32, g.count_h, g.count_w, g.pad_top,
                        g.pad_left, d_out.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_equal(d_out.download(), want));
  EXPECT_TRUE(d_out.guard_intact());
}

INSTANTIATE_TEST_SUITE_P(Shapes, PatchesGpuTest,
                         ::testing::Values(PatchCase{224, 168}, PatchCase{31, 33},
                                           PatchCase{1, 1}, PatchCase{384, 288},
                                           PatchCase{4032, 3024}),
                         [](const auto& info) {
                           return test::name(info.param.h, "x", info.param.w);
                         });

}  // namespace
}  // namespace musiq
