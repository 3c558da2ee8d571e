// Compiled as C++20 (the rest of the project is C++17): the public headers must build under both standards.
#include <grpo/grpo.hpp>

#if __cplusplus < 202002L
#error "this translation unit must be compiled as C++20"
#endif

int grpo_cxx20_include_check() {
  grpo::LossOptions options;
  options.validate();
  return static_cast<int>(options.loss_type);
}
