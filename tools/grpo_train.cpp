// grpo-train: GRPO training from a JSON run file (see include/grpo/app/grpo_train.hpp and the README).
#include <cstdio>
#include <cstring>

#include <grpo/app/grpo_train.hpp>
#include <grpo/version.hpp>

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("grpo-train %s\n", grpo::version);
    return 0;
  }
  return grpo::grpo_train_main(argc, argv);
}
