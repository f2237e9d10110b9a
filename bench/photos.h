// The four photo sizes every benchmark row is measured at.
#pragma once

namespace musiq::bench {

struct Photo {
  const char* name;
  int width, height;
};
inline constexpr Photo kPhotos[] = {
    {"224x224", 224, 224}, {"512x384", 512, 384}, {"1024x768", 1024, 768},
    {"4032x3024", 4032, 3024}};

}  // namespace musiq::bench
