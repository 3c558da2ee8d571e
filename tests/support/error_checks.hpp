#pragma once
// How an exception thrown by grpo-cpp can be caught: as grpo::Error, as its standard type, as std::exception.
// Torch-free and free of Catch macros (LibTorch's glog may redefine CHECK), so both the core and the LibTorch tests
// include it and assert on the returned facts.

#include <exception>
#include <string>

#include "grpo/error.hpp"

namespace grpo_test {

// What calling `f` (three times) showed.
struct CaughtError {
  bool as_grpo_error = false;      // catch (const grpo::Error&) caught it
  bool error_is_std_type = false;  // that grpo::Error is also a Std (a cross-cast from the mixin succeeds)
  bool as_std_type = false;        // catch (const Std&) caught it, with the same message
  bool as_std_exception = false;   // catch (const std::exception&) caught it, with the same message
  std::string message;             // what() through grpo::Error
};

template <class Std, class F>
CaughtError catch_error(F&& f) {
  CaughtError out;
  try {
    f();
  } catch (const grpo::Error& e) {
    out.as_grpo_error = true;
    out.message = e.what();
    out.error_is_std_type = dynamic_cast<const Std*>(&e) != nullptr;
  } catch (...) {
  }
  try {
    f();
  } catch (const Std& e) {
    out.as_std_type = out.as_grpo_error && out.message == e.what();
  } catch (...) {
  }
  try {
    f();
  } catch (const std::exception& e) {
    out.as_std_exception = out.as_grpo_error && out.message == e.what();
  } catch (...) {
  }
  return out;
}

}  // namespace grpo_test
