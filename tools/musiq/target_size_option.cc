#include "tools/musiq/target_size_option.h"

#include <vector>

namespace musiq::cli {

CLI::Option* add_target_size_option(CLI::App& command, TargetSize& target) {
  return command
      .add_option_function<std::vector<int>>(
          "--target-size",
          [&target](const std::vector<int>& width_height) {
            target = {width_height[0], width_height[1]};
          },
          "Resize every image to W x H pixels before scoring (TensorFlow's bilinear resize "
          "with antialiasing; MUSIQ is made for native resolution: see the README)")
      ->type_name("W H")
      ->expected(2)
      ->allow_extra_args(false)  // the paths may follow: `--target-size 512 512 photo.jpg`
      ->check(CLI::Range(1, 65535));
}

}  // namespace musiq::cli
