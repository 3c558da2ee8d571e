#pragma once
// grpo-cpp: GRPO training on LibTorch. Including this header gives the whole public API.
// Torch-free users (the grpo::core target) include the headers they need directly: core/advantages.hpp,
// core/loss_options.hpp, rewards/ (except reward_model.hpp), data/, models/llama_config.hpp, tokenizers/ and
// train/{config,schedule,state,callbacks,logging,chart}.hpp need only Eigen and nlohmann/json (and PCRE2 for
// tokenizers/bpe_tokenizer.hpp).
// grpo/models/torchscript.hpp is opt-in (it pulls in torch/script.h): include it directly.

#include "grpo/version.hpp"

// The math kernel.
#include "grpo/core/advantages.hpp"
#include "grpo/core/chunked_lm_head.hpp"
#include "grpo/core/logprobs.hpp"
#include "grpo/core/loss.hpp"
#include "grpo/core/loss_options.hpp"

// Reward functions and scoring.
#include "grpo/rewards/builtin/accuracy.hpp"
#include "grpo/rewards/builtin/format.hpp"
#include "grpo/rewards/builtin/repetition.hpp"
#include "grpo/rewards/builtin/soft_overlong_punishment.hpp"
#include "grpo/rewards/columns.hpp"
#include "grpo/rewards/inputs.hpp"
#include "grpo/rewards/reward_function.hpp"
#include "grpo/rewards/reward_model.hpp"
#include "grpo/rewards/scoring.hpp"

// Models, generation, tokenizers.
#include "grpo/generation/generate.hpp"
#include "grpo/generation/sampling.hpp"
#include "grpo/generation/text.hpp"
#include "grpo/models/causal_lm.hpp"
#include "grpo/models/gguf.hpp"
#include "grpo/models/llama.hpp"
#include "grpo/models/llama_config.hpp"
#include "grpo/models/llama_gguf.hpp"
#include "grpo/models/safetensors.hpp"
#include "grpo/pretrained/gguf_tokenizer.hpp"
#include "grpo/pretrained/pretrained.hpp"
#include "grpo/pretrained/save_pretrained.hpp"
#include "grpo/tokenizers/bpe_tokenizer.hpp"
#include "grpo/tokenizers/char_tokenizer.hpp"
#include "grpo/tokenizers/chat_template.hpp"
#include "grpo/tokenizers/tokenizer.hpp"
#include "grpo/train/policy.hpp"

// Multi-process data parallelism (c10d: Gloo, NCCL).
#include "grpo/distributed/data_parallel.hpp"
#include "grpo/distributed/launch_environment.hpp"
#include "grpo/distributed/process_group.hpp"

// Data and training.
#include "grpo/data/dataset.hpp"
#include "grpo/data/sampler.hpp"
#include "grpo/train/batching.hpp"
#include "grpo/train/callbacks.hpp"
#include "grpo/train/chart.hpp"
#include "grpo/train/checkpoint.hpp"
#include "grpo/train/config.hpp"
#include "grpo/train/dynamic_sampling.hpp"
#include "grpo/train/logging.hpp"
#include "grpo/train/policy.hpp"
#include "grpo/train/schedule.hpp"
#include "grpo/train/sft.hpp"
#include "grpo/train/state.hpp"
#include "grpo/train/trainer.hpp"
