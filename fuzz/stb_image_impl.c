/* The implementation of the system's stb_image.h (the same source as Debian's libstb.so),
   compiled into the image fuzzer with coverage and sanitizers, so that libFuzzer sees
   inside the PNG/GIF/BMP/TGA/PSD/PNM parsers that decode_with_stb reaches. Its
   definitions are linked ahead of libstb.so's. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
