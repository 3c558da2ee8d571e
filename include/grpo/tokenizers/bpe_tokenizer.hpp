#pragma once
// Byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2/Qwen3, SmolLM2, ...) from a Hugging Face tokenizer.json, or from
// the vocabulary a GGUF file carries, meeting the Tokenizer trait (tokenizer.hpp). Torch-free; uses PCRE2
// (libpcre2-8) for the split patterns. Token ids equal those of Hugging Face's `tokenizers` (tested on Qwen3,
// SmolLM2 and a Llama 3-style tokenizer over a corpus of prose, code, CJK, emoji, digits and whitespace runs).
//
// Encoding follows Hugging Face's pipeline: added tokens are found first (leftmost, longest; special tokens inside
// text become their ids), the text between them is normalized (NFC, when the tokenizer asks for it), split by the
// pre-tokenizer (Split with a regex, ByteLevel's GPT-2 pattern, Digits, Sequence) and each word is merged by BPE
// over its bytes. No BOS/EOS is added. Decoding joins the tokens' bytes and replaces invalid UTF-8 with U+FFFD.
//
// Not supported, rejected with an error naming the type: other models (WordPiece, Unigram, WordLevel),
// SentencePiece-style BPE (byte_fallback and a Metaspace pre-tokenizer or a '▁' normalizer: Llama 2, Mistral,
// Gemma), normalizers other than NFC, other pre-tokenizers and decoders, BPE dropout.
//
// Saving (to_tokenizer_json, tokenizer_config_json, save_pretrained) writes Hugging Face's files, which
// BpeTokenizer and transformers' AutoTokenizer load back to the same ids and texts: a tokenizer read from a
// tokenizer.json keeps what the file held (normalizer, pre-tokenizer, post-processor, decoder, truncation, padding,
// the model's options); one built from a GGUF vocabulary is written as the tokenizer.json of its model family.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/detail/atomic_file.hpp"
#include "grpo/detail/json_depth.hpp"
#include "grpo/error.hpp"
#include "grpo/tokenizers/detail/added_tokens.hpp"
#include "grpo/tokenizers/detail/bpe_model.hpp"
#include "grpo/tokenizers/detail/nfc.hpp"
#include "grpo/tokenizers/detail/pre_tokenizer.hpp"
#include "grpo/tokenizers/detail/tokenizer_json_writer.hpp"
#include "grpo/tokenizers/detail/utf8.hpp"
#include "grpo/tokenizers/tokenizer.hpp"

namespace grpo {

/// GGUF's token types (tokenizer.ggml.token_type).
enum class GgufTokenType : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6
};

/// A tokenizer's vocabulary as a GGUF file stores it (its tokenizer.ggml.* keys), for
/// BpeTokenizer::from_gguf_vocabulary. Plain values: a GGUF reader fills them without knowing the tokenizer.
struct GgufVocabulary {
  /// tokenizer.ggml.model: only "gpt2" (byte-level BPE) is supported.
  std::string model = "gpt2";
  /// tokenizer.ggml.pre: the pre-tokenizer ("gpt2", "llama-bpe", "qwen2", "smollm"; see from_gguf_vocabulary).
  std::string pre;
  /// tokenizer.ggml.tokens: the token strings, indexed by id, in byte-level form ("Ġthe").
  std::vector<std::string> tokens;
  /// tokenizer.ggml.merges: "left right", highest priority first.
  std::vector<std::string> merges;
  /// tokenizer.ggml.token_type, one per token (GgufTokenType values); empty: every token normal.
  std::vector<int32_t> token_types;
  /// tokenizer.ggml.bos_token_id.
  std::optional<int64_t> bos_token_id;
  /// tokenizer.ggml.eos_token_id.
  std::optional<int64_t> eos_token_id;
  /// tokenizer.ggml.padding_token_id (unset: the EOS id is used for padding).
  std::optional<int64_t> pad_token_id;
  /// tokenizer.ggml.unknown_token_id.
  std::optional<int64_t> unk_token_id;
};

/// Options of BpeTokenizer::decode.
struct DecodeOptions {
  /// Leave special tokens (<|im_end|>, <|endoftext|>, ...) out of the text; added tokens that are not special
  /// (<think>) are always kept.
  bool skip_special_tokens = true;
};

/// A byte-level BPE tokenizer. Immutable after loading; copies share the vocabulary and the word cache, and encode
/// and decode may be called from several threads at once.
class BpeTokenizer {
 public:
  /// The tokenizer of a Hugging Face model folder: `directory`/tokenizer.json, plus tokenizer_config.json when
  /// present (its bos/eos/pad/unk tokens and added tokens).
  static BpeTokenizer from_pretrained(const std::string& directory) {
    const std::string config = directory + "/tokenizer_config.json";
    return from_file(directory + "/tokenizer.json", std::ifstream(config).good() ? config : std::string());
  }

  /// A tokenizer.json file, and optionally a tokenizer_config.json file (empty path: none).
  static BpeTokenizer from_file(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path = "") {
    const std::string where = "grpo::BpeTokenizer::from_file: ";
    nlohmann::json config;
    if (!tokenizer_config_path.empty()) config = read_json(tokenizer_config_path, where);
    return build_from_json(read_json(tokenizer_json_path, where), config, where + tokenizer_json_path + ": ");
  }

  /// A parsed tokenizer.json and optionally a parsed tokenizer_config.json (null: none). The config is also the way
  /// to name the special tokens of a tokenizer.json that comes without one: {{"eos_token", "</s>"}}.
  static BpeTokenizer from_json(const nlohmann::json& tokenizer, const nlohmann::json& tokenizer_config = nullptr) {
    return build_from_json(tokenizer, tokenizer_config, "grpo::BpeTokenizer::from_json: ");
  }

  /// The vocabulary of a GGUF file. `vocabulary.pre` selects the pre-tokenizer as Hugging Face's tokenizer.json of
  /// that model family has it: "gpt2" (the GPT-2 pattern), "llama3" / "llama-v3" / "llama-bpe" (Llama 3's pattern,
  /// whole words found in the vocabulary taken as they are), "qwen2" / "deepseek-r1-qwen" (NFC, then Qwen2's
  /// pattern), "smollm" (every digit alone, then the GPT-2 pattern). Control tokens become special added tokens,
  /// user-defined tokens added tokens, unused tokens (padding entries) decode to nothing.
  static BpeTokenizer from_gguf_vocabulary(const GgufVocabulary& vocabulary);

  /// Token ids of `text` (valid UTF-8; throws InvalidArgument otherwise), without BOS/EOS; special tokens written
  /// in the text become their ids.
  std::vector<int64_t> encode(const std::string& text) const {
    const Data& d = *data_;
    const std::size_t invalid = detail::utf8::first_invalid(text);
    if (invalid != text.size()) {
      throw InvalidArgument("grpo::BpeTokenizer::encode: the text is not valid UTF-8 (at byte " +
                            std::to_string(invalid) + ")");
    }
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3 + 4);
    EncodeWorkspace ws;
    split_added(d.raw_matcher, text, ws.raw_pieces, ws.pre.match_data);
    for (const auto& raw : ws.raw_pieces) {
      if (raw.id >= 0) {
        ids.push_back(raw.id);
        continue;
      }
      std::string_view segment = std::string_view(text).substr(raw.begin, raw.end - raw.begin);
      if (d.nfc && detail::nfc(segment, ws.normalized)) segment = ws.normalized;
      split_added(d.normalized_matcher, segment, ws.normalized_pieces, ws.pre.match_data);
      for (const auto& piece : ws.normalized_pieces) {
        if (piece.id >= 0) {
          ids.push_back(piece.id);
          continue;
        }
        d.pre_tokenizer.split(segment.substr(piece.begin, piece.end - piece.begin), ws.pre, ws.words);
        for (const std::string_view word : ws.words) d.model.encode_word(word, ws.merge, ids);
      }
    }
    return ids;
  }

  /// Text of `ids` with special tokens skipped (the Tokenizer trait's decode).
  std::string decode(const std::vector<int64_t>& ids) const { return decode(ids, DecodeOptions{}); }

  /// Text of `ids`: the tokens' bytes joined, invalid UTF-8 (a multi-byte character cut between tokens) replaced by
  /// U+FFFD. Ids with no token (beyond the vocabulary, e.g. the padding rows of a larger embedding) decode to
  /// nothing, as in Hugging Face's tokenizers; a negative id throws OutOfRange.
  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const {
    const Data& d = *data_;
    std::string bytes;
    for (const int64_t id : ids) {
      if (id < 0) throw OutOfRange("grpo::BpeTokenizer::decode: negative id " + std::to_string(id));
      if (id >= static_cast<int64_t>(d.id_kind.size())) continue;
      const auto kind = d.id_kind[static_cast<std::size_t>(id)];
      if (kind == kNoToken || (kind == kSpecial && options.skip_special_tokens)) continue;
      bytes += d.id_bytes[static_cast<std::size_t>(id)];
    }
    return detail::utf8::lossy(bytes);
  }

  /// Number of ids: the largest id of the vocabulary and the added tokens, plus one (GGUF: the number of tokens).
  int64_t vocab_size() const { return static_cast<int64_t>(data_->id_kind.size()); }

  /// Padding id: the configured pad token, else the EOS id (as TRL does); throws InvalidArgument when neither is
  /// known.
  int64_t pad_token_id() const {
    if (data_->pad) return *data_->pad;
    if (data_->eos) return *data_->eos;
    throw InvalidArgument(
        "grpo::BpeTokenizer::pad_token_id: the tokenizer has neither a pad nor an eos token; load it with its "
        "tokenizer_config.json, or pass one naming \"pad_token\" or \"eos_token\" to BpeTokenizer::from_json");
  }

  /// End-of-sequence id; throws InvalidArgument when the tokenizer was loaded without one (a tokenizer.json alone).
  int64_t eos_token_id() const {
    if (data_->eos) return *data_->eos;
    throw InvalidArgument(
        "grpo::BpeTokenizer::eos_token_id: the tokenizer has no eos token; load it with its tokenizer_config.json, "
        "or pass one naming \"eos_token\" to BpeTokenizer::from_json");
  }

  /// Beginning-of-sequence id, when the tokenizer has one (Qwen's has none).
  std::optional<int64_t> bos_token_id() const { return data_->bos; }

  /// Unknown-token id, when the tokenizer has one.
  std::optional<int64_t> unk_token_id() const { return data_->unk; }

  /// Id of a token given in vocabulary form ("Ġthe", "<|im_end|>"), if it exists.
  std::optional<int64_t> token_to_id(const std::string& token) const {
    const auto it = data_->token_ids.find(token);
    if (it == data_->token_ids.end()) return std::nullopt;
    return it->second;
  }

  /// Vocabulary form of `id` ("Ġthe", "<|im_end|>"), if the id has a token.
  std::optional<std::string> id_to_token(int64_t id) const {
    if (id < 0 || id >= vocab_size() || data_->id_kind[static_cast<std::size_t>(id)] == kNoToken) return std::nullopt;
    return data_->id_tokens[static_cast<std::size_t>(id)];
  }

  /// True for the ids of special tokens (skipped by decode).
  bool is_special_token(int64_t id) const {
    return id >= 0 && id < vocab_size() && data_->id_kind[static_cast<std::size_t>(id)] == kSpecial;
  }

  /// The tokenizer as Hugging Face's tokenizer.json, which from_json (with tokenizer_config_json()) and
  /// transformers load back to the same ids and texts. Keys in the order `tokenizers` writes them; "added_tokens"
  /// holds every added token with its flags (those only tokenizer_config.json named too), sorted by id;
  /// model.vocab is sorted by id and model.merges ([left, right] pairs) by rank. A GGUF vocabulary is written as
  /// transformers' GGUF conversion writes it (GPT-2's post-processor and decoder), but with the normalizer,
  /// pre-tokenizer and ignore_merges of the model family's tokenizer.json that from_gguf_vocabulary applies
  /// (transformers' conversion drops SmolLM2's digit split, Qwen2's NFC and Llama 3's ignore_merges); its unused
  /// tokens are left out. The same tokenizer always gives the same JSON.
  nlohmann::ordered_json to_tokenizer_json() const;

  /// The tokenizer's Hugging Face tokenizer_config.json (keys sorted, as transformers writes them): bos_token,
  /// eos_token, pad_token and unk_token (strings, or null), added_tokens_decoder, tokenizer_class
  /// "PreTrainedTokenizerFast" (transformers then takes tokenizer.json as it is, where a model's own class may
  /// rebuild it), clean_up_tokenization_spaces false (decode() never cleans up), and model_max_length,
  /// add_bos_token, add_eos_token, padding_side, truncation_side as the loaded tokenizer_config.json had them. No
  /// chat template: grpo::save_pretrained (grpo/pretrained/save_pretrained.hpp) adds one. A token named here that
  /// is a plain vocabulary token of a GGUF file becomes a special added token when loaded back, as in transformers.
  nlohmann::json tokenizer_config_json() const;

  /// Writes `directory`/tokenizer.json and `directory`/tokenizer_config.json (creating the folder), each file
  /// atomically (grpo/detail/atomic_file.hpp); from_pretrained(directory) loads the same tokenizer back. Throws
  /// RuntimeError naming the path when a file cannot be written.
  void save_pretrained(const std::string& directory) const {
    const std::string where = "grpo::BpeTokenizer::save_pretrained: ";
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) throw RuntimeError(where + "cannot create the folder '" + directory + "': " + error.message());
    const std::filesystem::path folder(directory);
    detail::atomic_write_file((folder / "tokenizer.json").string(),
                              detail::tokenizer_json::dump(to_tokenizer_json(), where), where);
    detail::atomic_write_file((folder / "tokenizer_config.json").string(),
                              detail::tokenizer_json::dump(tokenizer_config_json(), where), where);
  }

 private:
  static constexpr uint8_t kNoToken = 0, kRegular = 1, kSpecial = 2;

  struct Data {
    detail::BpeModel model;
    std::vector<detail::AddedToken> added;
    detail::AddedTokenMatcher raw_matcher;         // added tokens with normalized = false
    detail::AddedTokenMatcher normalized_matcher;  // added tokens with normalized = true
    bool nfc = false;
    detail::PreTokenizer pre_tokenizer;
    std::unordered_map<std::string, int64_t> token_ids;  // vocabulary and added tokens
    std::vector<std::string> id_tokens;
    std::vector<std::string> id_bytes;  // what each id decodes to
    std::vector<uint8_t> id_kind;
    std::optional<int64_t> bos, eos, pad, unk;
    // tokenizer.json without its vocabulary, merges and added tokens (written from the tables above): version,
    // truncation, padding, normalizer, pre_tokenizer, post_processor, decoder and the model's options, as read.
    nlohmann::ordered_json layout;
    // The keys of the loaded tokenizer_config.json that tokenizer_config_json() writes back as they were.
    nlohmann::ordered_json config_kept = nlohmann::ordered_json::object();
  };

  struct EncodeWorkspace {
    detail::PreTokenizerWorkspace pre;
    detail::MergeWorkspace merge;
    std::vector<detail::TextPiece> raw_pieces;
    std::vector<detail::TextPiece> normalized_pieces;
    std::vector<std::string_view> words;
    std::string normalized;
  };

  explicit BpeTokenizer(std::shared_ptr<const Data> data) : data_(std::move(data)) {}

  static void split_added(const detail::AddedTokenMatcher& matcher, std::string_view text,
                          std::vector<detail::TextPiece>& pieces, detail::RegexMatchData& match_data) {
    if (matcher.empty()) {
      pieces.clear();
      if (!text.empty()) pieces.push_back({0, text.size(), -1});
      return;
    }
    matcher.split(text, match_data, pieces);
  }

  static nlohmann::json read_json(const std::string& path, const std::string& where) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw RuntimeError(where + path + ": cannot open the file");
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    if (detail::json_nesting_depth(text) > detail::max_json_depth) {
      throw InvalidArgument(where + path + ": the JSON nests arrays and objects more than " +
                            std::to_string(detail::max_json_depth) + " deep");
    }
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // a parse_error, or out_of_range for a number such as 1e400
      throw InvalidArgument(where + path + ": not valid JSON: " + e.what());
    }
  }

  static BpeTokenizer build_from_json(const nlohmann::json& tokenizer, const nlohmann::json& config,
                                      const std::string& where);

  // Completes `d` once the vocabulary, merges and added tokens are in: the id tables, byte ids and matchers.
  static void finish(Data& d, int64_t size, const std::string& where);

  std::shared_ptr<const Data> data_;
};

static_assert(check_tokenizer<BpeTokenizer>());

namespace detail {

/// Llama 3's split pattern (its tokenizer.json).
inline constexpr const char* llama3_split_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// Qwen2's (and Qwen3's) split pattern: Llama 3's with single digits.
inline constexpr const char* qwen2_split_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// Reading tokenizer.json and tokenizer_config.json.
namespace tokenizer_json {

// The JSON type of `value` in words, for error messages.
inline std::string json_type_name(const nlohmann::json& value) { return value.type_name(); }

// A string field that may be absent or null.
inline std::optional<std::string> optional_string(const nlohmann::json& object, const char* key,
                                                  const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    throw InvalidArgument(where + "\"" + key + "\" must be a string, not " + json_type_name(*it));
  }
  return it->get<std::string>();
}

inline bool optional_bool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw InvalidArgument(where + "\"" + key + "\" must be true or false");
  return it->get<bool>();
}

inline const char* sentencepiece_hint() {
  return "; only byte-level BPE is supported (a SentencePiece-style tokenizer, as Llama 2, Mistral and Gemma use, "
         "is not)";
}

// The normalizer of tokenizer.json: true for NFC, false for none; anything else throws.
inline bool parse_normalizer(const nlohmann::json& normalizer, const std::string& where) {
  if (normalizer.is_null()) return false;
  const std::string type = normalizer.value("type", std::string());
  if (type == "NFC") return true;
  if (type == "Sequence") {
    bool nfc = false;
    for (const auto& step : normalizer.at("normalizers")) nfc = parse_normalizer(step, where) || nfc;
    return nfc;
  }
  std::string message = where + "normalizer type '" + type + "' is not supported (supported: NFC, a Sequence of NFC)";
  if (type == "Prepend" || type == "Replace" || type == "Precompiled") message += sentencepiece_hint();
  throw InvalidArgument(message);
}

// Appends the steps of tokenizer.json's pre_tokenizer to `pre`; sets `byte_level` when a ByteLevel is met.
inline void parse_pre_tokenizer(const nlohmann::json& node, PreTokenizer& pre, bool& byte_level,
                                const std::string& where) {
  const std::string type = node.value("type", std::string());
  if (type == "Sequence") {
    for (const auto& step : node.at("pretokenizers")) parse_pre_tokenizer(step, pre, byte_level, where);
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (optional_bool(node, "add_prefix_space", true, where)) pre.add_prefix_space();
    if (optional_bool(node, "use_regex", true, where))
      pre.add_split(gpt2_split_pattern, false, SplitBehavior::isolated, false);
  } else if (type == "Split") {
    const auto& pattern = node.at("pattern");
    bool literal = false;
    std::string text;
    if (pattern.contains("Regex")) {
      text = pattern.at("Regex").get<std::string>();
    } else if (pattern.contains("String")) {
      text = pattern.at("String").get<std::string>();
      literal = true;
    } else {
      throw InvalidArgument(where + "a Split pre-tokenizer's pattern must hold \"Regex\" or \"String\"");
    }
    static const std::pair<const char*, SplitBehavior> behaviors[] = {
        {"Removed", SplitBehavior::removed},
        {"Isolated", SplitBehavior::isolated},
        {"MergedWithPrevious", SplitBehavior::merged_with_previous},
        {"MergedWithNext", SplitBehavior::merged_with_next},
        {"Contiguous", SplitBehavior::contiguous}};
    const std::string behavior = node.at("behavior").get<std::string>();
    const auto* found = std::find_if(std::begin(behaviors), std::end(behaviors),
                                     [&](const auto& entry) { return behavior == entry.first; });
    if (found == std::end(behaviors)) throw InvalidArgument(where + "unknown Split behavior '" + behavior + "'");
    if (literal && text.empty()) return;  // an empty string pattern matches nothing
    pre.add_split(text, literal, found->second, optional_bool(node, "invert", false, where), where);
  } else if (type == "Digits") {
    pre.add_split(optional_bool(node, "individual_digits", false, where) ? R"(\p{N})" : R"(\p{N}+)", false,
                  SplitBehavior::isolated, false);
  } else {
    std::string message =
        where + "pre-tokenizer type '" + type + "' is not supported (supported: Sequence, Split, ByteLevel, Digits)";
    if (type == "Metaspace") message += sentencepiece_hint();
    throw InvalidArgument(message);
  }
}

// Checks that tokenizer.json's decoder is byte-level (or absent).
inline void check_decoder(const nlohmann::json& decoder, const std::string& where) {
  if (decoder.is_null()) return;
  const std::string type = decoder.value("type", std::string());
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    for (const auto& step : decoder.at("decoders")) check_decoder(step, where);
    return;
  }
  std::string message = where + "decoder type '" + type + "' is not supported (supported: ByteLevel)";
  if (type == "Metaspace" || type == "ByteFallback" || type == "Replace" || type == "Fuse" || type == "Strip") {
    message += sentencepiece_hint();
  }
  throw InvalidArgument(message);
}

// A special token of tokenizer_config.json: a string, {"content": ...}, or null.
inline std::optional<std::string> config_token(const nlohmann::json& config, const char* key,
                                               const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
  throw InvalidArgument(where + "tokenizer_config.json's \"" + key +
                        "\" must be a string, an object with "
                        "\"content\", or null");
}

// An added token from a tokenizer.json "added_tokens" entry or a tokenizer_config.json "added_tokens_decoder" one.
inline AddedToken parse_added_token(const nlohmann::json& entry, int64_t id, const std::string& where) {
  AddedToken token;
  const auto content = optional_string(entry, "content", where);
  if (!content || content->empty())
    throw InvalidArgument(where + "an added token (id " + std::to_string(id) + ") has no content");
  token.content = *content;
  token.id = static_cast<int32_t>(id);
  token.special = optional_bool(entry, "special", false, where);
  token.normalized = optional_bool(entry, "normalized", !token.special, where);
  token.lstrip = optional_bool(entry, "lstrip", false, where);
  token.rstrip = optional_bool(entry, "rstrip", false, where);
  token.single_word = optional_bool(entry, "single_word", false, where);
  return token;
}

inline int64_t checked_id(const nlohmann::json& value, const std::string& what, const std::string& where) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX) {
    throw InvalidArgument(where + what + " must be an id (an integer from 0 to 2^31 - 1), not " + value.dump());
  }
  return value.get<int64_t>();
}

// Adds merge `left right` of rank `rank` to `model`.
inline void add_merge(BpeModel& model, const std::string& left, const std::string& right, std::size_t rank,
                      const std::string& where) {
  const auto l = model.vocab.find(left);
  const auto r = model.vocab.find(right);
  const auto merged = model.vocab.find(left + right);
  if (l == model.vocab.end() || r == model.vocab.end() || merged == model.vocab.end()) {
    const std::string missing = l == model.vocab.end() ? left : (r == model.vocab.end() ? right : left + right);
    throw InvalidArgument(where + "merge " + std::to_string(rank) + " ('" + left + " " + right + "') needs '" +
                          missing + "', which is not in the vocabulary");
  }
  model.merges.insert(l->second, r->second, {static_cast<int32_t>(rank), merged->second});
}

// The keys of tokenizer_config.json kept as read and written back (tokenizer_config_json()): what transformers
// uses and grpo-cpp does not need. Special tokens, added tokens and the class are written from the tokenizer.
inline constexpr const char* kept_config_keys[] = {"add_bos_token", "add_eos_token", "model_max_length", "padding_side",
                                                   "truncation_side"};

// The layout a tokenizer keeps to write tokenizer.json again: `tokenizer` without model.vocab, model.merges and the
// added tokens' entries, in the order `tokenizers` writes the keys (nodes in canonical() order, the model's
// options in BPE's order), an unknown top-level key after the known ones.
inline nlohmann::ordered_json layout_of(const nlohmann::json& tokenizer) {
  nlohmann::ordered_json layout = nlohmann::ordered_json::object();
  const auto copy = [&](const char* key, const nlohmann::json& fallback) {
    layout[key] = canonical(tokenizer.contains(key) ? tokenizer.at(key) : fallback);
  };
  copy("version", "1.0");
  copy("truncation", nullptr);
  copy("padding", nullptr);
  layout["added_tokens"] = nlohmann::ordered_json::array();
  for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) copy(key, nullptr);
  const nlohmann::json& model = tokenizer.at("model");
  nlohmann::ordered_json options = nlohmann::ordered_json::object();
  options["type"] = "BPE";
  for (const char* key : {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
                          "byte_fallback", "ignore_merges"}) {
    if (model.contains(key)) options[key] = canonical(model.at(key));
  }
  for (auto it = model.begin(); it != model.end(); ++it) {
    if (it.key() != "vocab" && it.key() != "merges" && !options.contains(it.key()))
      options[it.key()] = canonical(it.value());
  }
  layout["model"] = std::move(options);
  for (auto it = tokenizer.begin(); it != tokenizer.end(); ++it) {
    if (!layout.contains(it.key())) layout[it.key()] = canonical(it.value());
  }
  return layout;
}

// The tokenizer.json a GGUF vocabulary with pre-tokenizer `pre` stands for, without vocabulary, merges and added
// tokens; null for an unknown `pre`. The post-processor, decoder and model options are those of transformers' GGUF
// conversion (GPT2Tokenizer's); the normalizer, pre-tokenizer and ignore_merges those of the family's own
// tokenizer.json (SmolLM2: Digits then ByteLevel; Qwen2: NFC and a Split; Llama 3: a Split and ignore_merges).
// from_gguf_vocabulary builds the tokenizer from it, so that what is written is what runs.
inline nlohmann::json gguf_tokenizer_skeleton(const std::string& pre) {
  using nlohmann::json;
  const auto byte_level = [](bool use_regex) {
    return json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
  };
  const auto split_then_byte_level = [&](const char* pattern) {
    json split{{"type", "Split"}, {"behavior", "Isolated"}, {"invert", false}};
    split["pattern"] = json{{"Regex", pattern}};
    json steps = json::array();
    steps.push_back(std::move(split));
    steps.push_back(byte_level(false));
    return json{{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
  };
  json normalizer = nullptr;
  json pre_tokenizer;
  bool ignore_merges = false;
  if (pre == "gpt2") {
    pre_tokenizer = byte_level(true);
  } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe") {
    pre_tokenizer = split_then_byte_level(llama3_split_pattern);
    ignore_merges = true;
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    normalizer = json{{"type", "NFC"}};
    pre_tokenizer = split_then_byte_level(qwen2_split_pattern);
  } else if (pre == "smollm") {
    json steps = json::array();
    steps.push_back(json{{"type", "Digits"}, {"individual_digits", true}});
    steps.push_back(byte_level(true));
    pre_tokenizer = json{{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
  } else {
    return nullptr;
  }
  const auto sequence = [](const char* id, int type_id) {
    json inner{{"id", id}, {"type_id", type_id}};
    json outer = json::object();
    outer["Sequence"] = std::move(inner);
    return outer;
  };
  json single = json::array();
  single.push_back(sequence("A", 0));
  json pair = single;
  pair.push_back(sequence("B", 1));
  json post_processor{{"type", "TemplateProcessing"}, {"special_tokens", json::object()}};
  post_processor["single"] = std::move(single);
  post_processor["pair"] = std::move(pair);
  json model{{"type", "BPE"},
             {"dropout", nullptr},
             {"unk_token", nullptr},
             {"continuing_subword_prefix", ""},
             {"end_of_word_suffix", ""},
             {"fuse_unk", false},
             {"byte_fallback", false},
             {"ignore_merges", ignore_merges}};
  json tokenizer = json::object();
  tokenizer["version"] = "1.0";
  tokenizer["truncation"] = nullptr;
  tokenizer["padding"] = nullptr;
  tokenizer["normalizer"] = std::move(normalizer);
  tokenizer["pre_tokenizer"] = std::move(pre_tokenizer);
  tokenizer["post_processor"] = std::move(post_processor);
  tokenizer["decoder"] = byte_level(true);
  tokenizer["decoder"]["add_prefix_space"] = true;
  tokenizer["model"] = std::move(model);
  return tokenizer;
}

}  // namespace tokenizer_json
}  // namespace detail

inline void BpeTokenizer::finish(Data& d, int64_t size, const std::string& where) {
  d.model.index_bytes();
  d.id_kind.assign(static_cast<std::size_t>(size), kNoToken);
  d.id_tokens.assign(static_cast<std::size_t>(size), std::string());
  d.id_bytes.assign(static_cast<std::size_t>(size), std::string());
  // Hugging Face's ByteLevel decoder: a token whose characters are all byte-level ones stands for those bytes,
  // any other (an added token such as "<think>\n") for its own UTF-8.
  const auto set = [&](int64_t id, const std::string& token, uint8_t kind) {
    const auto index = static_cast<std::size_t>(id);
    d.id_kind[index] = kind;
    d.id_tokens[index] = token;
    auto bytes = detail::byte_level_to_bytes(token);
    d.id_bytes[index] = bytes ? std::move(*bytes) : token;
  };
  for (const auto& [token, id] : d.model.vocab) {
    set(id, token, kRegular);
    d.token_ids.emplace(token, id);
  }
  for (const auto& token : d.added) {
    set(token.id, token.content, token.special ? kSpecial : kRegular);
    d.token_ids[token.content] = token.id;
    if (token.normalized) {
      std::string normalized;
      d.normalized_matcher.add(token, d.nfc && detail::nfc(token.content, normalized) ? normalized : token.content);
    } else {
      d.raw_matcher.add(token, token.content);
    }
  }
  for (const auto* id : {&d.bos, &d.eos, &d.pad, &d.unk}) {
    if (*id && (**id < 0 || **id >= size)) {
      throw InvalidArgument(where + "special token id " + std::to_string(**id) + " is outside the vocabulary [0, " +
                            std::to_string(size) + ")");
    }
  }
}

inline BpeTokenizer BpeTokenizer::build_from_json(const nlohmann::json& tokenizer, const nlohmann::json& config,
                                                  const std::string& where) {
  if (!tokenizer.is_object() || !tokenizer.contains("model")) {
    throw InvalidArgument(where + "not a tokenizer.json (no \"model\" object)");
  }
  if (!config.is_null() && !config.is_object()) throw InvalidArgument(where + "tokenizer_config.json is not an object");
  auto d = std::make_shared<Data>();
  try {
    const auto& model = tokenizer.at("model");
    const std::string type = model.value("type", std::string(model.contains("merges") ? "BPE" : ""));
    if (type != "BPE") {
      std::string message = where + "model type '" + type + "' is not supported; only byte-level BPE (\"BPE\") is";
      throw InvalidArgument(message);
    }
    if (detail::tokenizer_json::optional_bool(model, "byte_fallback", false, where)) {
      throw InvalidArgument(where + "the BPE model uses byte_fallback" + detail::tokenizer_json::sentencepiece_hint());
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const auto value = detail::tokenizer_json::optional_string(model, key, where);
      if (value && !value->empty()) {
        throw InvalidArgument(where + "the BPE model's " + key + " ('" + *value + "') is not supported");
      }
    }
    if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() != 0.0) {
      throw InvalidArgument(where + "BPE dropout is not supported (it makes encoding random)");
    }
    d->nfc = detail::tokenizer_json::parse_normalizer(tokenizer.value("normalizer", nlohmann::json()), where);
    bool byte_level = false;
    const auto pre = tokenizer.value("pre_tokenizer", nlohmann::json());
    if (!pre.is_null()) detail::tokenizer_json::parse_pre_tokenizer(pre, d->pre_tokenizer, byte_level, where);
    if (!byte_level)
      throw InvalidArgument(where + "the pre-tokenizer has no ByteLevel step" +
                            detail::tokenizer_json::sentencepiece_hint());
    detail::tokenizer_json::check_decoder(tokenizer.value("decoder", nlohmann::json()), where);
    d->layout = detail::tokenizer_json::layout_of(tokenizer);

    int64_t size = 0;
    const auto& vocab = model.at("vocab");
    if (!vocab.is_object()) throw InvalidArgument(where + "model.vocab must be an object {token: id}");
    d->model.vocab.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int64_t id =
          detail::tokenizer_json::checked_id(it.value(), "the vocabulary id of '" + it.key() + "'", where);
      d->model.vocab[it.key()] = static_cast<int32_t>(id);
      size = std::max(size, id + 1);
    }
    const auto& merges = model.at("merges");
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& merge = merges[rank];
      if (merge.is_string()) {
        const std::string text = merge.get<std::string>();
        const auto space = text.find(' ');
        if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
          throw InvalidArgument(where + "merge " + std::to_string(rank) + " ('" + text + "') is not \"left right\"");
        }
        detail::tokenizer_json::add_merge(d->model, text.substr(0, space), text.substr(space + 1), rank, where);
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
        detail::tokenizer_json::add_merge(d->model, merge[0].get<std::string>(), merge[1].get<std::string>(), rank,
                                          where);
      } else {
        throw InvalidArgument(where + "merge " + std::to_string(rank) + " must be \"left right\" or [left, right]");
      }
    }
    if (const auto unk = detail::tokenizer_json::optional_string(model, "unk_token", where)) {
      const auto it = d->model.vocab.find(*unk);
      if (it == d->model.vocab.end())
        throw InvalidArgument(where + "unk_token '" + *unk + "' is not in the vocabulary");
      d->model.unk_id = it->second;
      d->unk = it->second;
    }
    d->model.fuse_unk = detail::tokenizer_json::optional_bool(model, "fuse_unk", false, where);
    d->model.ignore_merges = detail::tokenizer_json::optional_bool(model, "ignore_merges", false, where);

    // Added tokens: an added token whose content is in the vocabulary takes its vocabulary id (as in Hugging Face).
    std::unordered_map<std::string, std::size_t> added_index;
    const auto add = [&](detail::AddedToken token) {
      const auto in_vocab = d->model.vocab.find(token.content);
      if (in_vocab != d->model.vocab.end()) token.id = in_vocab->second;
      size = std::max<int64_t>(size, int64_t{token.id} + 1);  // int32 + 1 overflowed at 2^31 - 1
      const auto existing = added_index.find(token.content);
      if (existing != added_index.end()) {
        d->added[existing->second] = token;
      } else {
        added_index.emplace(token.content, d->added.size());
        d->added.push_back(token);
      }
    };
    for (const auto& entry : tokenizer.value("added_tokens", nlohmann::json::array())) {
      add(detail::tokenizer_json::parse_added_token(
          entry, detail::tokenizer_json::checked_id(entry.at("id"), "an added token's id", where), where));
    }
    if (config.is_object()) {
      for (const char* key : detail::tokenizer_json::kept_config_keys) {
        if (config.contains(key)) d->config_kept[key] = detail::tokenizer_json::canonical(config.at(key));
      }
      // Tokens only tokenizer_config.json knows (transformers adds them the same way).
      if (const auto decoder = config.find("added_tokens_decoder"); decoder != config.end() && decoder->is_object()) {
        for (auto it = decoder->begin(); it != decoder->end(); ++it) {
          const auto token = detail::tokenizer_json::parse_added_token(
              it.value(),
              detail::tokenizer_json::checked_id(nlohmann::json::parse(it.key(), nullptr, false),
                                                 "an added_tokens_decoder key", where),
              where);
          if (added_index.count(token.content) == 0) add(token);
        }
      }
      // Named special tokens: special added tokens (transformers makes a vocabulary token named here one too).
      const auto resolve = [&](const std::string& content, const char* key) -> int64_t {
        const auto existing = added_index.find(content);
        if (existing != added_index.end()) {
          d->added[existing->second].special = true;
          return d->added[existing->second].id;
        }
        const auto in_vocab = d->model.vocab.find(content);
        if (in_vocab == d->model.vocab.end()) {
          throw InvalidArgument(where + "tokenizer_config.json's " + key + " '" + content +
                                "' is neither in the vocabulary nor an added token");
        }
        detail::AddedToken token;
        token.content = content;
        token.id = in_vocab->second;
        token.special = true;
        add(token);
        return token.id;
      };
      const std::pair<const char*, std::optional<int64_t>*> named[] = {
          {"bos_token", &d->bos}, {"eos_token", &d->eos}, {"pad_token", &d->pad}, {"unk_token", &d->unk}};
      for (const auto& [key, target] : named) {
        if (const auto content = detail::tokenizer_json::config_token(config, key, where))
          *target = resolve(*content, key);
      }
      for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
        const auto list = config.find(key);
        if (list == config.end() || !list->is_array()) continue;
        for (const auto& entry : *list) {
          if (entry.is_string()) resolve(entry.get<std::string>(), key);
          if (entry.is_object() && entry.contains("content")) resolve(entry.at("content").get<std::string>(), key);
        }
      }
    }
    // The id tables have one slot per id up to the largest: a file naming id 2000000000 for one of its few tokens
    // must not make them gigabytes. Real vocabularies are dense (at most a few unused ids).
    const auto tokens = static_cast<int64_t>(d->model.vocab.size() + d->added.size());
    if (size > 2 * tokens + 65536) {
      throw InvalidArgument(where + "token id " + std::to_string(size - 1) + " is far beyond the " +
                            std::to_string(tokens) + " tokens of the file; ids must be below 2 x tokens + 65536");
    }
    finish(*d, size, where);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(where + "malformed tokenizer file: " + e.what());
  }
  return BpeTokenizer(std::move(d));
}

inline BpeTokenizer BpeTokenizer::from_gguf_vocabulary(const GgufVocabulary& vocabulary) {
  const std::string where = "grpo::BpeTokenizer::from_gguf_vocabulary: ";
  if (vocabulary.model != "gpt2") {
    static const std::pair<const char*, const char*> kinds[] = {
        {"llama", "SentencePiece BPE, as Llama 2, Mistral and Gemma use"},
        {"bert", "WordPiece"},
        {"t5", "Unigram"},
        {"rwkv", "RWKV's trie tokenizer"},
        {"no_vocab", "no vocabulary"}};
    std::string message = where + "tokenizer model '" + vocabulary.model + "'";
    for (const auto& [name, kind] : kinds) {
      if (vocabulary.model == name) message += std::string(" (") + kind + ")";
    }
    throw InvalidArgument(message + " is not supported; only 'gpt2' (byte-level BPE) is");
  }
  auto d = std::make_shared<Data>();
  const std::string& pre = vocabulary.pre;
  // The pipeline is built from the tokenizer.json the vocabulary is written as, so that the two cannot disagree.
  const nlohmann::json skeleton = detail::tokenizer_json::gguf_tokenizer_skeleton(pre);
  if (skeleton.is_null()) {
    throw InvalidArgument(where + "pre-tokenizer '" + pre +
                          "' is not supported (supported: gpt2, llama3, llama-v3, llama-bpe, qwen2, deepseek-r1-qwen, "
                          "smollm); set GgufVocabulary::pre to the one of the model's family");
  }
  d->nfc = detail::tokenizer_json::parse_normalizer(skeleton.at("normalizer"), where);
  bool byte_level = false;
  detail::tokenizer_json::parse_pre_tokenizer(skeleton.at("pre_tokenizer"), d->pre_tokenizer, byte_level, where);
  d->model.ignore_merges = skeleton.at("model").at("ignore_merges").get<bool>();
  d->layout = detail::tokenizer_json::layout_of(skeleton);
  const auto size = static_cast<int64_t>(vocabulary.tokens.size());
  if (size == 0) throw InvalidArgument(where + "the vocabulary has no tokens");
  if (!vocabulary.token_types.empty() && vocabulary.token_types.size() != vocabulary.tokens.size()) {
    throw InvalidArgument(where + "token_types has " + std::to_string(vocabulary.token_types.size()) + " entries for " +
                          std::to_string(size) + " tokens");
  }
  d->model.vocab.reserve(vocabulary.tokens.size());
  std::vector<int32_t> unused;
  for (int64_t id = 0; id < size; ++id) {
    const auto index = static_cast<std::size_t>(id);
    const auto type =
        vocabulary.token_types.empty() ? static_cast<int32_t>(GgufTokenType::normal) : vocabulary.token_types[index];
    const std::string& token = vocabulary.tokens[index];
    if (type == static_cast<int32_t>(GgufTokenType::unused)) {
      unused.push_back(static_cast<int32_t>(id));
      continue;
    }
    d->model.vocab[token] = static_cast<int32_t>(id);
    if (type == static_cast<int32_t>(GgufTokenType::control) ||
        type == static_cast<int32_t>(GgufTokenType::user_defined)) {
      if (token.empty()) continue;
      detail::AddedToken added;
      added.content = token;
      added.id = static_cast<int32_t>(id);
      added.special = type == static_cast<int32_t>(GgufTokenType::control);
      added.normalized = false;
      d->added.push_back(added);
    }
  }
  for (std::size_t rank = 0; rank < vocabulary.merges.size(); ++rank) {
    const std::string& text = vocabulary.merges[rank];
    const auto space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      throw InvalidArgument(where + "merge " + std::to_string(rank) + " ('" + text + "') is not \"left right\"");
    }
    detail::tokenizer_json::add_merge(d->model, text.substr(0, space), text.substr(space + 1), rank, where);
  }
  d->bos = vocabulary.bos_token_id;
  d->eos = vocabulary.eos_token_id;
  d->pad = vocabulary.pad_token_id;
  d->unk = vocabulary.unk_token_id;
  finish(*d, size, where);
  return BpeTokenizer(std::move(d));
}

inline nlohmann::ordered_json BpeTokenizer::to_tokenizer_json() const {
  const Data& d = *data_;
  nlohmann::ordered_json out = d.layout;
  std::vector<const detail::AddedToken*> added;
  for (const auto& token : d.added) added.push_back(&token);
  std::sort(added.begin(), added.end(), [](const detail::AddedToken* a, const detail::AddedToken* b) {
    return std::tie(a->id, a->content) < std::tie(b->id, b->content);
  });
  auto& added_tokens = out["added_tokens"] = nlohmann::ordered_json::array();
  for (const auto* token : added) added_tokens.push_back(detail::tokenizer_json::added_token_entry(*token));

  // The vocabulary by id (ties, which a hand-written file could hold, by token), and each id's tokens for the
  // merges (all of tied tokens).
  std::vector<std::pair<int32_t, const std::string*>> vocab;
  vocab.reserve(d.model.vocab.size());
  for (const auto& [token, id] : d.model.vocab) vocab.emplace_back(id, &token);
  std::sort(vocab.begin(), vocab.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : *a.second < *b.second;
  });
  std::vector<std::pair<std::string, nlohmann::ordered_json>> vocab_entries;
  vocab_entries.reserve(vocab.size());
  std::vector<std::vector<const std::string*>> tokens_of(
      vocab.empty() ? 0 : static_cast<std::size_t>(vocab.back().first) + 1);
  for (const auto& [id, token] : vocab) {
    vocab_entries.emplace_back(*token, id);
    tokens_of[static_cast<std::size_t>(id)].push_back(token);
  }
  // A merge is written as the texts whose concatenation is its result. With tied ids the first tokens of the pair
  // may spell another token ("a" and "b" both id 98: the merge a+b -> "ab" is not "a a" -> "aa").
  const auto spelling = [&](int32_t left, int32_t right, int32_t merged) {
    const auto& lefts = tokens_of[static_cast<std::size_t>(left)];
    const auto& rights = tokens_of[static_cast<std::size_t>(right)];
    if (lefts.size() > 1 || rights.size() > 1) {
      for (const auto* l : lefts) {
        for (const auto* r : rights) {
          const auto it = d.model.vocab.find(*l + *r);
          if (it != d.model.vocab.end() && it->second == merged) return nlohmann::ordered_json::array({*l, *r});
        }
      }
    }
    return nlohmann::ordered_json::array({*lefts.front(), *rights.front()});
  };
  // Merges by rank: only their order matters, so the ranks read back as 0, 1, ... encode the same.
  std::vector<std::tuple<int32_t, int32_t, int32_t, int32_t>> merges;
  merges.reserve(d.model.merges.size());
  d.model.merges.for_each([&](int32_t left, int32_t right, const detail::MergeTable::Merge& merge) {
    merges.emplace_back(merge.rank, left, right, merge.id);
  });
  std::sort(merges.begin(), merges.end());
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  merge_list.get_ref<nlohmann::ordered_json::array_t&>().reserve(merges.size());
  for (const auto& [rank, left, right, merged] : merges) merge_list.push_back(spelling(left, right, merged));
  auto& model = out["model"];
  model["vocab"] = detail::tokenizer_json::object_of_distinct(std::move(vocab_entries));
  model["merges"] = std::move(merge_list);
  return out;
}

inline nlohmann::json BpeTokenizer::tokenizer_config_json() const {
  const Data& d = *data_;
  nlohmann::json config = nlohmann::json::object();
  for (auto it = d.config_kept.begin(); it != d.config_kept.end(); ++it) {
    config[it.key()] = nlohmann::json::parse(it.value().dump());
  }
  nlohmann::json decoder = nlohmann::json::object();
  for (const auto& token : d.added) {
    decoder[std::to_string(token.id)] = detail::tokenizer_json::added_token_decoder_entry(token);
  }
  config["added_tokens_decoder"] = std::move(decoder);
  const auto token = [&](const std::optional<int64_t>& id) -> nlohmann::json {
    if (!id) return nullptr;
    const auto text = id_to_token(*id);
    return text ? nlohmann::json(*text) : nlohmann::json(nullptr);
  };
  config["bos_token"] = token(d.bos);
  config["eos_token"] = token(d.eos);
  config["pad_token"] = token(d.pad);
  config["unk_token"] = token(d.unk);
  config["clean_up_tokenization_spaces"] = false;
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  return config;
}

}  // namespace grpo
