// The public header compiles as C++ (strict warnings); the consumer program covers C11.
#include <musiq/musiq.h>

int main() {
  musiq_params params = musiq_default_params();
  return params.threads > 0 ? 0 : 1;
}
