#pragma once
// grpo-cpp: GRPO training on LibTorch. Including this header gives the whole public API.
// Torch-free users (the grpo::core target) include the headers they need from grpo/core/ directly:
// advantages.hpp and loss_options.hpp need only Eigen and nlohmann/json.

#include "grpo/version.hpp"

#include "grpo/core/advantages.hpp"
#include "grpo/core/logprobs.hpp"
#include "grpo/core/loss.hpp"
#include "grpo/core/loss_options.hpp"
