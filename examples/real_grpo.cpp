// GRPO on a real chat model (`make demo-real`): SmolLM2-135M-Instruct learns to answer short arithmetic word
// problems in a fixed format, some working and then the line "Answer: <number>". Two rewards read the completions:
// "correct" (the number of the "Answer:" line equals the dataset's "answer" column: the ground truth reaches the
// reward function as a column of the batch) and "format". On this 2-core machine the whole run, evaluations before
// and after training included, took 12 minutes (twice that while another build shared the cores).
//
// 1. Training problems and a held-out set come from the task's generator (examples/word_problems.hpp) with two
//    different seeds; each is rendered with the model's chat template (chat_prompt below), the answer format
//    stated after the question.
// 2. The held-out set is answered greedily, in batches, before and after training: the share of replies in the
//    format, the share that are correct, and (as a check) the share whose last number is right whatever the format.
// 3. GRPO trains the top layers of the model on the training problems with the two rewards alone: no reference
//    model (beta = 0), completions cut at 64 tokens get no gradient (DAPO's overlong filtering).
//
// Writes into --output-dir: metrics.jsonl, completions.jsonl and training_chart.svg (the trainer's reporters),
// held_out.jsonl (every held-out problem with its replies before and after) and summary.json.
// Exit code 77 (CTest's "skipped") when the default model file is absent.
//
// Options (defaults in brackets): --model PATH [<build>/models/SmolLM2-135M-Instruct.Q4_1.gguf] --steps N [20]
// --prompts N (per step) [2] --generations N (G) [8] --max-completion-length N [64] --lr X [5e-5]
// --temperature X [0.7] --trainable-layers N [8] --held-out N [200] --eval-batch N [50] --train-problems N [2000]
// --seed N [0] --threads N [2] --output-dir DIR [real_grpo_output]
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <grpo/generation/text.hpp>
#include <grpo/pretrained/pretrained.hpp>
#include <grpo/train/trainer.hpp>
#include "word_problems.hpp"

namespace {

struct Args {
  std::string model;
  int64_t steps = 20;
  int prompts = 2;
  int generations = 8;
  int64_t max_completion_length = 64;
  double learning_rate = 5e-5;
  double temperature = 0.7;
  std::size_t held_out = 200;
  std::size_t eval_batch = 50;
  std::size_t train_problems = 2000;
  uint64_t seed = 0;
  int64_t trainable_layers = 8;
  int threads = 2;
  std::string output_dir = "real_grpo_output";
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
    if (key == "--model")
      a.model = value();
    else if (key == "--steps")
      a.steps = std::stoll(value());
    else if (key == "--prompts")
      a.prompts = std::stoi(value());
    else if (key == "--generations")
      a.generations = std::stoi(value());
    else if (key == "--max-completion-length")
      a.max_completion_length = std::stoll(value());
    else if (key == "--lr")
      a.learning_rate = std::stod(value());
    else if (key == "--temperature")
      a.temperature = std::stod(value());
    else if (key == "--held-out")
      a.held_out = std::stoull(value());
    else if (key == "--eval-batch")
      a.eval_batch = std::stoull(value());
    else if (key == "--train-problems")
      a.train_problems = std::stoull(value());
    else if (key == "--seed")
      a.seed = std::stoull(value());
    else if (key == "--trainable-layers")
      a.trainable_layers = std::stoll(value());
    else if (key == "--threads")
      a.threads = std::stoi(value());
    else if (key == "--output-dir")
      a.output_dir = value();
    else {
      std::fprintf(
          stderr,
          "unknown option %s (options: --model --steps --prompts --generations --max-completion-length --lr "
          "--temperature --held-out --eval-batch --train-problems --trainable-layers --seed --threads --output-dir)\n",
          key.c_str());
      std::exit(2);
    }
  }
  return a;
}

// <build>/models/SmolLM2-135M-Instruct.Q4_1.gguf, <build> being the folder above this program's.
std::string default_model() {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  const auto build = error ? std::filesystem::path("build") : self.parent_path().parent_path();
  return (build / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").string();
}

// The conversation of one problem. Measured greedily on 24-32 problems: with the format stated in the system prompt
// SmolLM2-135M-Instruct kept to it in 0 of 24 replies, with it after the question in 9 of 24 (the template's
// default system prompt) and in 16 of 32 with the short system prompt below, which also saves prompt tokens that
// every generation and every training forward pays for. Wordings such as "Show your working, then ..." did worse.
const char* const system_prompt = "You are a helpful assistant.";
const char* const format_instruction = "\nEnd your reply with the line \"Answer: <number>\".";

// The prompt text the model continues: the conversation in the model's chat template, with the assistant turn
// opened. The one place where a conversation becomes text: once the trainer renders conversational rows itself,
// the dataset rows below can hold these two messages as their "prompt" instead.
std::string chat_prompt(const grpo::ChatTemplate& chat_template, const std::string& question) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "system"}, {"content", system_prompt}});
  messages.push_back({{"role", "user"}, {"content", question + format_instruction}});
  return chat_template.render(messages, /*add_generation_prompt=*/true);
}

// Rows {"prompt", "question", "answer", "kind"}; the "answer" column is the ground truth the "correct" reward reads.
grpo::Dataset problem_dataset(const std::vector<grpo_examples::WordProblem>& problems,
                              const grpo::ChatTemplate& chat_template) {
  std::vector<nlohmann::json> rows;
  for (const auto& p : problems) {
    rows.push_back({{"prompt", chat_prompt(chat_template, p.question)},
                    {"question", p.question},
                    {"answer", p.answer},
                    {"kind", p.kind}});
  }
  return grpo::Dataset::from_rows(std::move(rows));
}

// Trains only the top `layers` decoder layers and the final norm; the embedding (tied to the LM head) and the
// layers below stay frozen, so backward stops at the lowest trainable layer and AdamW keeps no state for the rest.
// Measured here, a training forward + backward over 8 x 100 tokens took 12.9 s with 8 of SmolLM2's 30 layers
// trainable and 23.3 s with all of them. `layers` >= the model's layer count trains everything. Returns the
// number of trainable parameters.
int64_t train_top_layers_only(grpo::LlamaModel& model, int64_t layers) {
  const int64_t total = model.config().num_hidden_layers;
  const std::string prefix = "model.layers.";
  int64_t trainable = 0;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    bool train = layers >= total || name == "model.norm.weight";
    if (name.rfind(prefix, 0) == 0) train = train || std::stoll(name.substr(prefix.size())) >= total - layers;
    item.value().requires_grad_(train);
    if (train) trainable += item.value().numel();
  }
  return trainable;
}

// Greedy replies to every held-out problem and how they score.
struct HeldOutResult {
  std::vector<std::string> replies;
  std::vector<grpo_examples::ReplyScore> scores;
  double seconds = 0;

  double share(bool grpo_examples::ReplyScore::*field) const {
    double n = 0;
    for (const auto& s : scores) n += s.*field ? 1 : 0;
    return n / static_cast<double>(scores.size());
  }
};

// Answers `data` greedily, `batch` prompts per generate_text call (batched decoding is several times faster than
// one prompt at a time), with at most `max_new_tokens` tokens per reply.
HeldOutResult answer_held_out(grpo::LlamaModel& model, const grpo::BpeTokenizer& tokenizer, const grpo::Dataset& data,
                              std::size_t batch, int64_t max_new_tokens) {
  const auto start = std::chrono::steady_clock::now();
  grpo::GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = max_new_tokens;
  HeldOutResult result;
  for (std::size_t begin = 0; begin < data.size(); begin += batch) {
    std::vector<std::string> prompts;
    for (std::size_t i = begin; i < std::min(begin + batch, data.size()); ++i) prompts.push_back(data.prompt(i));
    const auto out = grpo::generate_text(model, tokenizer, prompts, options);
    for (std::size_t k = 0; k < out.completions.size(); ++k) {
      const auto answer = data.row(begin + k).at("answer").get<int64_t>();
      result.replies.push_back(out.completions[k]);
      result.scores.push_back(grpo_examples::score_reply(out.completions[k], answer));
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// "41.3% +- 2.8": a share with its binomial standard error, in percent.
std::string percent(double p, std::size_t n) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f%% +- %.1f", 100 * p, 100 * std::sqrt(p * (1 - p) / static_cast<double>(n)));
  return text;
}

// Standard error (in percent points) of the mean paired difference after - before over the same problems.
double paired_standard_error(const HeldOutResult& before, const HeldOutResult& after,
                             bool grpo_examples::ReplyScore::*field) {
  const auto n = static_cast<double>(before.scores.size());
  double sum = 0, sum_squares = 0;
  for (std::size_t i = 0; i < before.scores.size(); ++i) {
    const double d = (after.scores[i].*field ? 1.0 : 0.0) - (before.scores[i].*field ? 1.0 : 0.0);
    sum += d;
    sum_squares += d * d;
  }
  const double mean = sum / n, variance = sum_squares / n - mean * mean;
  return 100 * std::sqrt(std::max(0.0, variance) / n);
}

// "format 51.0% +- 3.5, correct 29.5% +- 3.2, last number correct 46.5% +- 3.5"
std::string shares(const HeldOutResult& r) {
  using grpo_examples::ReplyScore;
  const auto n = r.scores.size();
  return "format " + percent(r.share(&ReplyScore::formatted), n) + ", correct " +
         percent(r.share(&ReplyScore::correct), n) + ", last number correct " +
         percent(r.share(&ReplyScore::last_number_correct), n);
}

// {"format": 0.51, "correct": 0.295, "last_number_correct": 0.465}
nlohmann::json shares_json(const HeldOutResult& r) {
  using grpo_examples::ReplyScore;
  return {{"format", r.share(&ReplyScore::formatted)},
          {"correct", r.share(&ReplyScore::correct)},
          {"last_number_correct", r.share(&ReplyScore::last_number_correct)}};
}

// Peak resident memory of this process so far, in MB (Linux reports ru_maxrss in kB).
double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  torch::set_num_threads(args.threads);
  torch::manual_seed(args.seed);
  if (args.model.empty()) {
    args.model = default_model();
    if (!std::filesystem::exists(args.model)) {
      std::fprintf(stderr,
                   "%s is absent: fetch it with `cmake -DDEST=%s -P cmake/fetch-smollm2.cmake` (or `make "
                   "demo-real`), or pass --model\n",
                   args.model.c_str(), std::filesystem::path(args.model).parent_path().c_str());
      return 77;
    }
  }

  try {
    const grpo::Pretrained pretrained = grpo::load_pretrained(args.model);
    if (!pretrained.chat_template) {
      std::fprintf(stderr, "%s has no chat template; this example needs a chat (instruct) model\n", args.model.c_str());
      return 1;
    }
    std::printf("model: %s (%.1f s to load)\n", args.model.c_str(), elapsed());

    // Held-out problems from another seed; training problems that repeat a held-out question are left out.
    const auto held_out_problems = grpo_examples::word_problems(args.held_out, args.seed + 1000003);
    std::set<std::string> held_out_questions;
    for (const auto& p : held_out_problems) held_out_questions.insert(p.question);
    std::vector<grpo_examples::WordProblem> train_problems;
    for (auto& p : grpo_examples::word_problems(args.train_problems, args.seed)) {
      if (held_out_questions.count(p.question) == 0) train_problems.push_back(std::move(p));
    }
    const grpo::Dataset train = problem_dataset(train_problems, *pretrained.chat_template);
    const grpo::Dataset held_out = problem_dataset(held_out_problems, *pretrained.chat_template);
    std::printf("task: arithmetic word problems; %zu for training, %zu held out (another seed)\n", train.size(),
                held_out.size());
    std::printf("prompt of the first problem:\n%s\n", train.prompt(0).c_str());

    const HeldOutResult before =
        answer_held_out(*pretrained.model, pretrained.tokenizer, held_out, args.eval_batch, args.max_completion_length);
    std::printf("before GRPO (greedy, %zu problems, %.0f s): %s\n", held_out.size(), before.seconds,
                shares(before).c_str());
    std::fflush(stdout);

    double parameters = 0;
    for (const auto& p : pretrained.model->parameters()) parameters += static_cast<double>(p.numel());
    const auto layers = pretrained.model->config().num_hidden_layers;
    const auto trainable = static_cast<double>(train_top_layers_only(*pretrained.model, args.trainable_layers));
    std::printf("training the top %lld of %lld layers: %.1f M of %.1f M parameters\n",
                static_cast<long long>(std::min(args.trainable_layers, layers)), static_cast<long long>(layers),
                trainable / 1e6, parameters / 1e6);

    grpo::GRPOConfig config;
    config.output_dir = args.output_dir;
    config.seed = args.seed;
    config.num_generations = args.generations;
    config.per_device_train_batch_size = args.generations;  // one prompt's group per micro-batch
    config.gradient_accumulation_steps = args.prompts;      // prompts per optimizer step
    config.max_completion_length = args.max_completion_length;
    config.temperature = args.temperature;
    config.learning_rate = args.learning_rate;
    config.lr_scheduler_type = grpo::LrSchedulerType::constant;
    config.beta = 0.0;           // no reference model: less time and memory
    config.epsilon_high = 0.28;  // DAPO clip-higher
    // DAPO's overlong filtering: a reply cut at max_completion_length (it has no "Answer:" line, so reward 0)
    // gets no gradient, rather than teaching the model that shorter is better whatever it says.
    config.mask_truncated_completions = true;
    config.max_steps = args.steps;
    config.logging_steps = 1;
    config.save_steps = 0;  // no checkpoints: the weights are 0.5 GB

    std::vector<grpo::RewardFunction> rewards;
    rewards.push_back(grpo_examples::correct_answer_reward());
    rewards.push_back(grpo_examples::answer_format_reward());
    config.weights = {1.0, 0.5};

    // The default reporters write metrics.jsonl, completions.jsonl and the chart, and print a line per step.
    grpo::GRPOTrainer<grpo::LlamaModel, grpo::BpeTokenizer> trainer(pretrained.model, pretrained.tokenizer,
                                                                    std::move(rewards), config, train);
    std::printf("GRPO: %lld steps, %d prompts x G = %d completions of at most %lld tokens per step, lr %g\n",
                static_cast<long long>(config.max_steps), args.prompts, args.generations,
                static_cast<long long>(args.max_completion_length), args.learning_rate);
    std::fflush(stdout);
    const auto train_start = elapsed();
    trainer.train();
    const double train_seconds = elapsed() - train_start;

    const HeldOutResult after =
        answer_held_out(*pretrained.model, pretrained.tokenizer, held_out, args.eval_batch, args.max_completion_length);

    // Every held-out problem with both replies.
    std::filesystem::create_directories(args.output_dir);
    std::ofstream replies(std::filesystem::path(args.output_dir) / "held_out.jsonl");
    for (std::size_t i = 0; i < held_out.size(); ++i) {
      replies << nlohmann::json{{"question", held_out.row(i).at("question")},
                                {"answer", held_out.row(i).at("answer")},
                                {"before", before.replies[i]},
                                {"before_correct", before.scores[i].correct},
                                {"after", after.replies[i]},
                                {"after_correct", after.scores[i].correct}}
                     .dump()
              << "\n";
    }

    const auto n = held_out.size();
    using grpo_examples::ReplyScore;
    const auto line = [&](const char* name, bool ReplyScore::*field) {
      std::printf("  %-20s %s  ->  %s   (paired difference %+.1f +- %.1f points)\n", name,
                  percent(before.share(field), n).c_str(), percent(after.share(field), n).c_str(),
                  100 * (after.share(field) - before.share(field)), paired_standard_error(before, after, field));
    };
    std::printf("\nheld-out, %zu problems, greedy: before GRPO -> after GRPO (binomial standard errors)\n", n);
    line("format", &ReplyScore::formatted);
    line("correct", &ReplyScore::correct);
    line("last number correct", &ReplyScore::last_number_correct);
    for (std::size_t i = 0; i < std::min<std::size_t>(3, n); ++i) {
      std::printf("\nQ: %s (%lld)\n  before: %s\n  after:  %s\n",
                  held_out.row(i).at("question").get<std::string>().c_str(),
                  static_cast<long long>(held_out.row(i).at("answer").get<int64_t>()), before.replies[i].c_str(),
                  after.replies[i].c_str());
    }
    const double total = elapsed();
    std::printf("\nwall time %.0f s (training %.0f s, evaluations %.0f + %.0f s), peak RSS %.0f MB\n", total,
                train_seconds, before.seconds, after.seconds, peak_rss_mb());

    const nlohmann::json summary{
        {"held_out", n},         {"before", shares_json(before)},  {"after", shares_json(after)},
        {"wall_seconds", total}, {"train_seconds", train_seconds}, {"peak_rss_mb", peak_rss_mb()}};
    std::ofstream(std::filesystem::path(args.output_dir) / "summary.json") << summary.dump(2) << "\n";
    std::printf(
        "logs: %s/metrics.jsonl, completions.jsonl, held_out.jsonl, summary.json\nchart: %s/training_chart.svg\n",
        args.output_dir.c_str(), args.output_dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "real_grpo: %s\n", e.what());
    return 1;
  }
}
