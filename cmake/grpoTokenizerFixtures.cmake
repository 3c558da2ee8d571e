# grpo_unpack_tokenizer_fixtures(<out_var>): unpacks tests/fixtures/tokenizers/tokenizers.tar.xz (Qwen3's
# tokenizer.json, SmolLM2's GGUF vocabulary, NFC cases: 16.8 MB in a 1.8 MB archive, written by
# tests/fixtures/tokenizers/make_fixtures.py) into the build tree at configure time, again whenever the archive
# changes, and sets <out_var> to the folder. Used by the tokenizer tests and bench_tokenizer.
function(grpo_unpack_tokenizer_fixtures out_var)
  set(archive ${PROJECT_SOURCE_DIR}/tests/fixtures/tokenizers/tokenizers.tar.xz)
  set(destination ${PROJECT_BINARY_DIR}/tests/fixtures/tokenizers)
  set(stamp ${destination}/.unpacked-sha256)
  file(SHA256 ${archive} archive_hash)
  set(unpacked_hash "")
  if(EXISTS ${stamp})
    file(READ ${stamp} unpacked_hash)
  endif()
  if(NOT unpacked_hash STREQUAL archive_hash)
    file(REMOVE_RECURSE ${destination})
    file(ARCHIVE_EXTRACT INPUT ${archive} DESTINATION ${destination})
    file(WRITE ${stamp} ${archive_hash})
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${archive})
  set(${out_var} ${destination} PARENT_SCOPE)
endfunction()
