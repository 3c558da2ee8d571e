#pragma once
// grpo-cpp: GRPO training on LibTorch. Including this header gives the whole public API.
// Torch-free users (the grpo::core target) include the headers they need directly: core/advantages.hpp,
// core/loss_options.hpp and everything under rewards/ except reward_model.hpp need only Eigen and nlohmann/json.

#include "grpo/version.hpp"

// The math kernel.
#include "grpo/core/advantages.hpp"
#include "grpo/core/logprobs.hpp"
#include "grpo/core/loss.hpp"
#include "grpo/core/loss_options.hpp"

// Reward functions and scoring.
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/rewards/builtin/format.hpp"
#include "grpo/rewards/builtin/repetition.hpp"
#include "grpo/rewards/builtin/soft_overlong_punishment.hpp"
#include "grpo/rewards/columns.hpp"
#include "grpo/rewards/reward_function.hpp"
#include "grpo/rewards/reward_model.hpp"
#include "grpo/rewards/scoring.hpp"
