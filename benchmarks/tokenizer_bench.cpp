// Encode throughput of grpo::BpeTokenizer against Hugging Face's tokenizers (the Rust library, called from Python
// by benchmarks/peer/tokenizer_peer.py) on the tokenizer tests' corpus (tests/fixtures/tokenizers/corpus.json, 124
// lines, 12 KB), with Qwen3's tokenizer, SmolLM2's (from its GGUF vocabulary) and the small Llama 3-style one.
// Both sides encode each line separately (no special tokens added), on one thread:
//   first pass   one pass over the corpus right after loading (empty word caches)
//   warm         passes repeated for about --seconds, median of --reps repetitions
// The Python side also reports encode_batch over the whole corpus (RAYON_NUM_THREADS=1: one thread). Both sides
// check their ids against tests/fixtures/tokenizers/expected.json before timing.
//
// Usage: bench_tokenizer [--seconds S] [--reps N] [--python PATH] [--no-peer]
// --python: an interpreter with `tokenizers` installed (default: $GRPO_TOKENIZERS_PYTHON, else python3); the peer
// is skipped, with a message, when it cannot import tokenizers.
#include <grpo/tokenizers/bpe_tokenizer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef GRPO_TOKENIZER_SOURCE_FIXTURES
#define GRPO_TOKENIZER_SOURCE_FIXTURES "tests/fixtures/tokenizers"
#endif
#ifndef GRPO_TOKENIZER_FIXTURES
#define GRPO_TOKENIZER_FIXTURES "build/tests/fixtures/tokenizers"
#endif
#ifndef GRPO_TOKENIZER_PEER_SCRIPT
#define GRPO_TOKENIZER_PEER_SCRIPT "benchmarks/peer/tokenizer_peer.py"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Args {
  double seconds = 1.0;
  int reps = 5;
  std::string python = std::getenv("GRPO_TOKENIZERS_PYTHON") ? std::getenv("GRPO_TOKENIZERS_PYTHON") : "python3";
  bool peer = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("missing value after " + key);
      return argv[++i];
    };
    if (key == "--seconds") {
      a.seconds = std::stod(value());
    } else if (key == "--reps") {
      a.reps = std::stoi(value());
    } else if (key == "--python") {
      a.python = value();
    } else if (key == "--no-peer") {
      a.peer = false;
    } else {
      throw std::invalid_argument("unknown option " + key +
                                  " (options: --seconds S, --reps N, --python PATH, --no-peer)");
    }
  }
  return a;
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return json::parse(buffer.str());
}

grpo::GgufVocabulary read_gguf_vocabulary(const std::string& path) {
  const json extract = read_json(path);
  grpo::GgufVocabulary v;
  v.model = extract.at("model").get<std::string>();
  v.pre = extract.at("pre").get<std::string>();
  v.tokens = extract.at("tokens").get<std::vector<std::string>>();
  v.merges = extract.at("merges").get<std::vector<std::string>>();
  v.token_types = extract.at("token_types").get<std::vector<int32_t>>();
  v.bos_token_id = extract.at("bos_token_id").get<int64_t>();
  v.eos_token_id = extract.at("eos_token_id").get<int64_t>();
  v.pad_token_id = extract.at("pad_token_id").get<int64_t>();
  return v;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

struct Timing {
  double load_s = 0;
  double first_pass_s = 0;
  double warm_pass_s = 0;  // median seconds per pass over the corpus
  std::size_t tokens = 0;
};

Timing time_tokenizer(const std::function<grpo::BpeTokenizer()>& load, const std::vector<std::string>& corpus,
                      const json& expected_ids, const Args& args) {
  Timing t;
  auto start = Clock::now();
  const grpo::BpeTokenizer tokenizer = load();
  t.load_s = seconds_since(start);
  std::size_t tokens = 0;
  start = Clock::now();
  std::vector<std::vector<int64_t>> ids;
  for (const auto& line : corpus) ids.push_back(tokenizer.encode(line));
  t.first_pass_s = seconds_since(start);
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    if (ids[i] != expected_ids[i].get<std::vector<int64_t>>()) {
      throw std::runtime_error("ids differ from tokenizers on corpus line " + std::to_string(i));
    }
    tokens += ids[i].size();
  }
  t.tokens = tokens;
  std::vector<double> per_pass;
  for (int rep = 0; rep < args.reps; ++rep) {
    int passes = 0;
    std::size_t sink = 0;
    start = Clock::now();
    do {
      for (const auto& line : corpus) sink += tokenizer.encode(line).size();
      ++passes;
    } while (seconds_since(start) < args.seconds / args.reps);
    per_pass.push_back(seconds_since(start) / passes);
    if (sink != tokens * static_cast<std::size_t>(passes)) throw std::runtime_error("unstable ids");
  }
  t.warm_pass_s = median(per_pass);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    const std::string source = GRPO_TOKENIZER_SOURCE_FIXTURES;
    const std::string unpacked = GRPO_TOKENIZER_FIXTURES;
    const auto corpus = read_json(source + "/corpus.json").get<std::vector<std::string>>();
    const json expected = read_json(source + "/expected.json");
    std::size_t bytes = 0;
    for (const auto& line : corpus) bytes += line.size();

    const std::map<std::string, std::function<grpo::BpeTokenizer()>> loaders = {
        {"qwen3", [&] { return grpo::BpeTokenizer::from_pretrained(unpacked + "/qwen3"); }},
        {"smollm2",
         [&] {
           return grpo::BpeTokenizer::from_gguf_vocabulary(
               read_gguf_vocabulary(unpacked + "/smollm2/gguf_vocabulary.json"));
         }},
        {"llama3_style", [&] { return grpo::BpeTokenizer::from_pretrained(source + "/llama3_style"); }}};

    json peer;
    if (args.peer) {
      const std::string command = "RAYON_NUM_THREADS=1 '" + args.python + "' '" GRPO_TOKENIZER_PEER_SCRIPT "' '" +
                                  source + "' '" + unpacked + "' " + std::to_string(args.seconds) + " " +
                                  std::to_string(args.reps) + " 2>/dev/null";
      FILE* pipe = ::popen(command.c_str(), "r");
      std::string output;
      char buffer[4096];
      while (pipe && std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
      const int status = pipe ? ::pclose(pipe) : -1;
      if (status == 0 && !output.empty()) {
        peer = json::parse(output);
      } else {
        std::printf("peer: '%s' could not run %s with tokenizers; Python side skipped\n", args.python.c_str(),
                    GRPO_TOKENIZER_PEER_SCRIPT);
      }
    }

    std::printf("corpus: %zu lines, %zu bytes; one thread; warm = median of %d repetitions of about %.2f s\n",
                corpus.size(), bytes, args.reps, args.seconds / args.reps);
    if (peer.contains("tokenizers_version")) {
      std::printf("peer: tokenizers %s (Python %s)\n", peer["tokenizers_version"].get<std::string>().c_str(),
                  peer["python_version"].get<std::string>().c_str());
    }
    std::printf("%-13s %7s | %9s %9s %9s | %9s %9s %9s %9s | %7s\n", "tokenizer", "tokens", "C++ load", "C++ 1st",
                "C++ warm", "HF load", "HF 1st", "HF warm", "HF batch", "ratio");
    std::printf("%-13s %7s | %9s %9s %9s | %9s %9s %9s %9s | %7s\n", "", "", "s", "MB/s", "MB/s", "s", "MB/s", "MB/s",
                "MB/s", "warm");
    for (const auto& [name, load] : loaders) {
      const Timing t = time_tokenizer(load, corpus, expected.at(name).at("ids"), args);
      const double mb = static_cast<double>(bytes) / 1e6;
      std::printf("%-13s %7zu | %9.3f %9.2f %9.2f |", name.c_str(), t.tokens, t.load_s, mb / t.first_pass_s,
                  mb / t.warm_pass_s);
      if (peer.contains(name)) {
        const auto& p = peer[name];
        const double hf_warm = p["warm_pass_s"].get<double>();
        std::printf(" %9.3f %9.2f %9.2f %9.2f | %6.2fx\n", p["load_s"].get<double>(),
                    mb / p["first_pass_s"].get<double>(), mb / hf_warm, mb / p["batch_pass_s"].get<double>(),
                    hf_warm / t.warm_pass_s);
      } else {
        std::printf(" %9s %9s %9s %9s | %7s\n", "-", "-", "-", "-", "-");
      }
    }
    std::printf("ratio: HF per-line encode time / C++ encode time, warm (above 1: C++ faster)\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
