#pragma once
// The exceptions grpo-cpp throws. Every one is a grpo::Error and also the standard exception it always was, so
//   catch (const grpo::Error& e)             catches everything the library throws,
//   catch (const std::invalid_argument& e)   (or std::runtime_error, std::out_of_range, std::logic_error) and
//   catch (const std::exception& e)          keep catching what they caught before.
// Every message starts with the qualified name of the public function or type that threw and ": "
// ("grpo::policy_loss: mask has shape [2, 3] but ...", "grpo::write_safetensors: /tmp/x.safetensors: ...").
//
// grpo::Error is a mixin, not a std::exception: the standard exceptions do not derive virtually from
// std::exception, so an Error deriving from it would give InvalidArgument two std::exception bases and make
// catch (const std::exception&) ambiguous (it would then catch nothing). Each concrete type has exactly one
// std::exception base, its standard exception; Error adds the common catch type and what().
// Exceptions thrown by LibTorch (c10::Error), nlohmann::json, the standard library (std::bad_alloc,
// std::filesystem::filesystem_error) or a user's callback pass through unchanged, except that a reward function's
// exception reaches the caller as a grpo::RewardError naming the function (rewards/scoring.hpp).

#include <stdexcept>
#include <string>

namespace grpo {

/// The common base of every exception grpo-cpp throws; catch it by reference.
class Error {
 public:
  virtual ~Error() = default;
  /// The message, starting with "grpo::<entity>: ".
  virtual const char* what() const noexcept = 0;

 protected:
  Error() = default;
  Error(const Error&) = default;
  Error& operator=(const Error&) = default;
};

/// A bad argument, option, configuration value or input file content: fix the input and retry.
class InvalidArgument : public std::invalid_argument, public Error {
 public:
  explicit InvalidArgument(const std::string& message) : std::invalid_argument(message) {}
  explicit InvalidArgument(const char* message) : std::invalid_argument(message) {}
  const char* what() const noexcept override { return std::invalid_argument::what(); }
};

/// A failure while running: a file that cannot be opened, read or written, an inconsistent checkpoint, ...
class RuntimeError : public std::runtime_error, public Error {
 public:
  explicit RuntimeError(const std::string& message) : std::runtime_error(message) {}
  explicit RuntimeError(const char* message) : std::runtime_error(message) {}
  const char* what() const noexcept override { return std::runtime_error::what(); }
};

/// An index or key outside what exists (a dataset row, a column, a token id).
class OutOfRange : public std::out_of_range, public Error {
 public:
  explicit OutOfRange(const std::string& message) : std::out_of_range(message) {}
  explicit OutOfRange(const char* message) : std::out_of_range(message) {}
  const char* what() const noexcept override { return std::out_of_range::what(); }
};

/// A broken internal invariant: a bug in grpo-cpp or in an extension of it, not a bad input.
class LogicError : public std::logic_error, public Error {
 public:
  explicit LogicError(const std::string& message) : std::logic_error(message) {}
  explicit LogicError(const char* message) : std::logic_error(message) {}
  const char* what() const noexcept override { return std::logic_error::what(); }
};

}  // namespace grpo
