// The main demo (`make demo`): GRPO teaches a small Llama-family model addition. Its accuracy reward compares
// each answer with the dataset's "answer" column (the ground truth reaches the reward function as a column of
// the batch), and a format reward asks for digits only.
//
// 1. A held-out 20% of the problems is kept for evaluation (greedy decoding, exact answer).
// 2. A short supervised warm-up (grpo::sft_train) teaches the answer format on the training problems, stopped
//    early so that the model is right only some of the time.
// 3. GRPO then trains on the training problems with the rewards alone.
//
// Options: --sft-steps N (250) --grpo-steps N (3000) --lr X (GRPO peak learning rate, 5e-4) --batch N (rows per
// step, 256 = 32 prompts x 8) --max-operand N (29) --width N (64) --layers N (2) --output-dir DIR --seed N --threads N
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <torch/types.h>

#include <grpo/models/llama.hpp>
#include <grpo/rewards/builtin/accuracy.hpp>
#include <grpo/rewards/builtin/format.hpp>
#include <grpo/tokenizers/char_tokenizer.hpp>
#include <grpo/train/sft.hpp>
#include <grpo/train/trainer.hpp>
#include "arithmetic_task.hpp"

namespace {

struct Args {
  int64_t sft_steps = 250;
  int64_t grpo_steps = 3000;
  std::string output_dir = "arithmetic_grpo_output";
  uint64_t seed = 0;
  int threads = 1;  // the tiny model's ops are too small to gain from a second thread
  double learning_rate = 5e-4;
  int64_t max_operand = 29;
  int64_t width = 64;
  int64_t layers = 2;
  int batch = 256;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", key.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (key == "--sft-steps")
      a.sft_steps = std::stoll(value());
    else if (key == "--grpo-steps")
      a.grpo_steps = std::stoll(value());
    else if (key == "--output-dir")
      a.output_dir = value();
    else if (key == "--seed")
      a.seed = std::stoull(value());
    else if (key == "--threads")
      a.threads = std::stoi(value());
    else if (key == "--lr")
      a.learning_rate = std::stod(value());
    else if (key == "--max-operand")
      a.max_operand = std::stoll(value());
    else if (key == "--width")
      a.width = std::stoll(value());
    else if (key == "--layers")
      a.layers = std::stoll(value());
    else if (key == "--batch")
      a.batch = std::stoi(value());
    else {
      std::fprintf(stderr, "unknown option %s (options: --sft-steps --grpo-steps --output-dir --seed --threads --lr)\n",
                   key.c_str());
      std::exit(2);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  torch::set_num_threads(args.threads);
  torch::manual_seed(args.seed);

  // Problems a+b with a, b in 0..29 by default; the "answer" column is the ground truth.
  const grpo::Dataset all = grpo_examples::arithmetic_dataset({0, args.max_operand, "+"});
  const auto [train, eval] = all.split(0.2, args.seed);
  std::printf("task: %zu addition problems a+b=, a and b in 0..%lld; %zu for training, %zu held out\n", all.size(),
              static_cast<long long>(args.max_operand), train.size(), eval.size());

  const auto tokenizer = grpo::CharTokenizer("0123456789+=");
  auto model_config = grpo::LlamaConfig::tiny(tokenizer.vocab_size());
  model_config.hidden_size = args.width;
  model_config.intermediate_size = 2 * args.width;
  model_config.head_dim = args.width / model_config.num_attention_heads;
  model_config.num_hidden_layers = args.layers;
  auto model = std::make_shared<grpo::LlamaModel>(model_config);

  grpo::GRPOConfig config;
  config.output_dir = args.output_dir;
  config.seed = args.seed;
  config.num_generations = 8;
  config.per_device_train_batch_size = args.batch;  // prompts x 8 completions per step
  config.max_completion_length = 4;
  config.learning_rate = args.learning_rate;
  config.lr_scheduler_type = grpo::LrSchedulerType::cosine;  // decays to 0: a stable policy at the end
  config.warmup_ratio = 0.05;
  config.epsilon_high = 0.28;  // DAPO clip-higher
  config.max_steps = args.grpo_steps;
  config.logging_steps = 50;
  config.eval_steps = 250;
  config.save_steps = 1000;
  config.save_total_limit = 2;

  // An accuracy reward that needs the ground-truth column, and a format reward (digits only).
  std::vector<grpo::RewardFunction> rewards;
  rewards.push_back(grpo::accuracy_reward());
  rewards.push_back(grpo::format_reward("[0-9]+", "format"));
  config.weights = {1.0, 0.1};  // TRL: reward_weights

  grpo::TrainerOptions options;
  options.eval.accuracy_reward = "accuracy";  // evaluate() reports this reward's mean as eval_accuracy
  grpo::GRPOTrainer<grpo::LlamaModel, grpo::CharTokenizer> trainer(model, tokenizer, std::move(rewards), config, train,
                                                                   eval, options);
  const double initial = trainer.evaluate().at("eval_accuracy");
  std::printf("held-out accuracy of the untrained model: %.1f%%\n", 100 * initial);

  // Supervised warm-up, stopped early: the model learns the format and some of the sums ("answer" column).
  grpo::SFTOptions sft;
  sft.target_column = "answer";
  sft.steps = args.sft_steps;
  sft.batch_size = 64;
  sft.learning_rate = 2e-3;
  sft.seed = args.seed;
  const grpo::SFTResult warm_up = grpo::sft_train(trainer.policy(), tokenizer, train, sft);
  const double base = trainer.evaluate().at("eval_accuracy");
  std::printf("short supervised warm-up (so that the model is sometimes right): %lld steps, final loss %.3f\n",
              static_cast<long long>(warm_up.steps), warm_up.recent_loss);
  std::printf("held-out accuracy before GRPO: %.1f%%\n", 100 * base);

  std::printf("GRPO: %lld steps, G = %d, %d completions per step\n", static_cast<long long>(config.max_steps),
              config.num_generations, config.per_device_train_batch_size);
  const auto result = trainer.train();
  const double final_accuracy = result.last_eval_metrics.at("eval_accuracy");

  std::printf("\nheld-out accuracy: %.1f%% before GRPO -> %.1f%% after GRPO\n", 100 * base, 100 * final_accuracy);
  std::printf("logs:  %s/metrics.jsonl, %s/completions.jsonl\n", config.output_dir.c_str(), config.output_dir.c_str());
  std::printf("chart: %s/training_chart.svg\n", config.output_dir.c_str());
  std::printf("checkpoints: %s/checkpoint-*\n", config.output_dir.c_str());
  return 0;
}
