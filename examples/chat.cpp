// A real chat model answering a question: SmolLM2-135M-Instruct (or any llama / qwen2 GGUF file or Hugging Face
// folder with a byte-level BPE tokenizer), its own chat template, greedy decoding until its EOS token.
//
//   make chat                                           # fetches SmolLM2 into build/models, asks a question
//   build/examples/chat --model model.gguf "Why is the sky blue?"
//
// Exit code 77 (CTest's "skipped") when the default model file is absent.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include <grpo/generation/text.hpp>
#include <grpo/pretrained/pretrained.hpp>

namespace {

int usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--model PATH] [--system TEXT] [--max-new-tokens N] [QUESTION]\n"
               "  PATH: a .gguf file or a Hugging Face model folder (default: <build>/models/"
               "SmolLM2-135M-Instruct.Q4_1.gguf)\n",
               program);
  return 2;
}

// <build>/models/SmolLM2-135M-Instruct.Q4_1.gguf, <build> being the folder above this program's.
std::string default_model() {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  const auto build = error ? std::filesystem::path("build") : self.parent_path().parent_path();
  return (build / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").string();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, system, question = "What is the capital of France? Answer in one sentence.";
  int64_t max_new_tokens = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--model" || arg == "--system" || arg == "--max-new-tokens") && i + 1 < argc) {
      const std::string value = argv[++i];
      if (arg == "--model") model_path = value;
      if (arg == "--system") system = value;
      if (arg == "--max-new-tokens") max_new_tokens = std::atoll(value.c_str());
    } else if (arg.rfind("--", 0) == 0) {
      return usage(argv[0]);
    } else {
      question = arg;
    }
  }
  if (model_path.empty()) {
    model_path = default_model();
    if (!std::filesystem::exists(model_path)) {
      std::fprintf(stderr,
                   "%s is absent: fetch it with `cmake -DDEST=%s -P cmake/fetch-smollm2.cmake` (or `make "
                   "chat`), or pass --model\n",
                   model_path.c_str(), std::filesystem::path(model_path).parent_path().c_str());
      return 77;
    }
  }

  try {
    const auto start = std::chrono::steady_clock::now();
    const grpo::Pretrained pretrained = grpo::load_pretrained(model_path);
    const auto loaded = std::chrono::steady_clock::now();
    if (!pretrained.chat_template) {
      std::fprintf(stderr, "%s has no chat template; this example needs a chat (instruct) model\n", model_path.c_str());
      return 1;
    }
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    messages.push_back({{"role", "user"}, {"content", question}});
    const std::string prompt = pretrained.chat_template->render(messages, /*add_generation_prompt=*/true);

    grpo::GenerationOptions options;
    options.do_sample = false;  // greedy: the same answer every time
    options.max_new_tokens = max_new_tokens;
    const auto answer = grpo::generate_text(*pretrained.model, pretrained.tokenizer, {prompt}, options);
    const auto done = std::chrono::steady_clock::now();

    const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    const auto tokens = answer.completion_ids[0].size();
    std::printf("model: %s (%.1f s to load)\n", model_path.c_str(), seconds(start, loaded));
    std::printf("user: %s\n", question.c_str());
    std::printf("assistant: %s\n", answer.completions[0].c_str());
    std::printf("(%zu tokens in %.1f s, greedy%s)\n", tokens, seconds(loaded, done),
                answer.truncated[0] ? ", cut at --max-new-tokens" : ", stopped at the model's EOS token");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat: %s\n", e.what());
    return 1;
  }
}
