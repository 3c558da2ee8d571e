#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/), small valid and invalid inputs.

Run once from anywhere (python3 tests/fuzz/make_seeds.py); only the standard library is needed. The GGUF and
safetensors seeds are written here byte by byte (a few hundred bytes to a few KB each, unlike the fixtures of
tests/fixtures/gguf); the tokenizer seeds are cut from tests/fixtures/tokenizers/llama3_style; the chat template
seeds are the real templates of tests/fixtures/chat_templates up to 5 KB and the engine's construct cases.
regression_* seeds reproduce fixed bugs: some are written here, the inputs the fuzzers found are kept beside them
(this script never removes a file).
"""

import json
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- GGUF -------------------------------------------------------------------------------------------------------
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
                  U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id: (block size, bytes per block)
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22),
        "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q2_K": (10, 256, 84), "Q4_K": (12, 256, 144),
        "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}


def gguf_string(text):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def gguf_value(kind, value):
    if kind == STR:
        return gguf_string(value)
    if kind == ARR:
        element_kind, elements = value
        return struct.pack("<IQ", element_kind, len(elements)) + b"".join(
            gguf_value(element_kind, e) for e in elements)
    return struct.pack(SCALAR_FORMATS[kind], value)


def gguf(metadata, tensors, version=3, alignment=32):
    """metadata: [(key, kind, value)]; tensors: [(name, dims innermost first, type name, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, kind, value in metadata:
        out += gguf_string(key) + struct.pack("<I", kind) + gguf_value(kind, value)
    offset = 0
    placed = []
    for name, dims, type_name, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", GGML[type_name][0], offset)
        placed.append((offset, data))
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    data_start = len(out)
    for position, data in placed:
        out += b"\0" * (data_start + position - len(out)) + data
    return out


def f16(value):
    return struct.pack("<e", value)


def tensor_bytes(rng, type_name, count):
    _, block, size = GGML[type_name]
    if type_name == "F32":
        return b"".join(struct.pack("<f", rng.uniform(-1, 1)) for _ in range(count))
    if type_name == "F16":
        return b"".join(f16(rng.uniform(-1, 1)) for _ in range(count))
    if type_name == "BF16":
        return b"".join(struct.pack("<f", rng.uniform(-1, 1))[2:] for _ in range(count))
    out = b""
    for _ in range(count // block):
        body = bytes(rng.randrange(256) for _ in range(size))
        if type_name == "Q6_K":  # the scale d comes last
            out += body[:-2] + f16(0.01)
        elif type_name in ("Q4_1", "Q5_1", "Q4_K", "Q5_K"):  # d and m (or dmin) first
            out += f16(0.01) + f16(-0.02) + body[4:]
        else:
            out += f16(0.01) + body[2:]
    return out


def byte_level_chars():
    """GPT-2's bytes_to_unicode: the character standing for each byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {}
    extra = 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_gguf_seeds():
    rng = random.Random(7)
    # One tensor of each type: rows of one block, two rows.
    tensors = []
    for type_name, (_, block, _) in GGML.items():
        tensors.append((type_name.lower() + ".weight", [block, 2], type_name,
                        tensor_bytes(rng, type_name, block * 2)))
    write("gguf", "quant_types.gguf", gguf([("general.architecture", STR, "test")], tensors))

    # Every metadata value type, nested arrays and a 64-byte alignment.
    metadata = [
        ("general.alignment", U32, 64),
        ("u8", U8, 200), ("i8", I8, -5), ("u16", U16, 60000), ("i16", I16, -30000), ("u32", U32, 4000000000),
        ("i32", I32, -2000000000), ("f32", F32, 0.5), ("bool", BOOL, True), ("str", STR, "caf\u00e9"),
        ("u64", U64, 2**63 + 1), ("i64", I64, -(2**62)), ("f64", F64, 1e-300),
        ("array.str", ARR, (STR, ["a", "", "\u4f60\u597d"])), ("array.i32", ARR, (I32, [1, -2, 3])),
        ("array.f32", ARR, (F32, [0.25, -1.5])), ("array.bool", ARR, (BOOL, [True, False])),
        ("array.nested", ARR, (ARR, [(U8, [1, 2]), (STR, ["x"])])), ("array.empty", ARR, (U64, [])),
    ]
    write("gguf", "metadata_types.gguf",
          gguf(metadata, [("t", [4], "F32", tensor_bytes(rng, "F32", 4))], alignment=64))

    # A tiny Llama with a tokenizer and a chat template: what llama_config_from_gguf, tokenizer_from_gguf and
    # chat_template_from_gguf read.
    chars = byte_level_chars()
    tokens = chars[:] + ["\u0120t", "he", "\u0120the", "<|im_start|>", "<|im_end|>"]
    token_types = [1] * 256 + [1, 1, 1, 3, 3]
    merges = ["\u0120 t", "h e", "\u0120t he"]
    with open(os.path.join(FIXTURES, "chat_templates", "templates", "smollm2-135m-instruct.jinja")) as f:
        chat_template = f.read()
    head_dim, heads, hidden = 4, 2, 8
    llama_metadata = [
        ("general.architecture", STR, "llama"), ("llama.block_count", U32, 1),
        ("llama.context_length", U32, 64), ("llama.embedding_length", U32, hidden),
        ("llama.feed_forward_length", U32, 16), ("llama.attention.head_count", U32, heads),
        ("llama.attention.head_count_kv", U32, 1), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("llama.rope.freq_base", F32, 10000.0), ("llama.rope.dimension_count", U32, head_dim),
        ("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "smollm"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)), ("tokenizer.ggml.token_type", ARR, (I32, token_types)),
        ("tokenizer.ggml.merges", ARR, (STR, merges)), ("tokenizer.ggml.bos_token_id", U32, 259),
        ("tokenizer.ggml.eos_token_id", U32, 260), ("tokenizer.ggml.padding_token_id", U32, 260),
        ("tokenizer.chat_template", STR, chat_template),
    ]
    llama_tensors = [
        ("blk.0.attn_q.weight", [hidden, hidden], "F32", tensor_bytes(rng, "F32", hidden * hidden)),
        ("token_embd.weight", [hidden, 4], "F16", tensor_bytes(rng, "F16", hidden * 4)),
        ("rope_freqs.weight", [head_dim // 2], "F32", struct.pack("<ff", 1.0, 8.0)),
    ]
    write("gguf", "tiny_llama.gguf", gguf(llama_metadata, llama_tensors))
    qwen_metadata = [(k.replace("llama.", "qwen2."), kind, v) for k, kind, v in llama_metadata
                     if k != "tokenizer.chat_template"]
    qwen_metadata = [(k, kind, "qwen2" if k == "general.architecture" else
                      ("qwen2" if k == "tokenizer.ggml.pre" else v)) for k, kind, v in qwen_metadata]
    write("gguf", "tiny_qwen2_v2.gguf", gguf(qwen_metadata, llama_tensors[:2], version=2))

    # Regressions (see the fuzz section of the README): rope_freqs.weight with no values for a head dimension of 1
    # (llama_config_from_gguf took the largest of no divisors), and dims [0, 2^40, 2^40], whose shape LibTorch
    # refused with its own error.
    write("gguf", "regression_empty_rope_freqs.gguf",
          gguf([(k, kind, 1 if k == "llama.rope.dimension_count" else v) for k, kind, v in llama_metadata
                if not k.startswith("tokenizer.")] +
               [("llama.attention.key_length", U32, 1), ("llama.vocab_size", U32, 300)],
               [("rope_freqs.weight", [0], "F32", b"")]))
    write("gguf", "regression_zero_dim_overflow.gguf",
          gguf([], [("t", [0, 2**40, 2**40], "F32", b"")]))

    # Invalid: truncated tensor data, truncated metadata, a big-endian version, a bad magic, overlapping tensors.
    quants = gguf([("general.architecture", STR, "test")], tensors[:4])
    write("gguf", "invalid_truncated_data.gguf", quants[: len(quants) - 20])
    write("gguf", "invalid_truncated_metadata.gguf", gguf(metadata, [])[:90])
    write("gguf", "invalid_big_endian.gguf", b"GGUF" + struct.pack(">IQQ", 3, 0, 0))
    write("gguf", "invalid_magic.gguf", b"GGML" + struct.pack("<IQQ", 3, 0, 0))
    overlapping = bytearray(gguf([], [("a", [8], "F32", tensor_bytes(rng, "F32", 8)),
                                      ("b", [8], "F32", tensor_bytes(rng, "F32", 8))]))
    second_offset = overlapping.find(struct.pack("<Q", 1) + b"b") + 9 + 4 + 8 + 4  # name, n_dims, dim, type
    overlapping[second_offset:second_offset + 8] = struct.pack("<Q", 0)
    write("gguf", "invalid_overlap.gguf", bytes(overlapping))


# ---- safetensors ------------------------------------------------------------------------------------------------
def safetensors(entries, metadata=None, pad=True, header_length=None):
    """entries: [(name, dtype, shape, data bytes)] stored in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    length = len(text) if header_length is None else header_length
    return struct.pack("<Q", length) + text + b"".join(e[3] for e in entries)


def write_safetensors_seeds():
    rng = random.Random(11)
    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    every = [(name.lower(), name, [2, 3], bytes(rng.randrange(2) if name == "BOOL" else rng.randrange(256)
                                                for _ in range(6 * size)))
             for name, size in sizes.items()]
    write("safetensors", "every_dtype.safetensors", safetensors(every, {"format": "pt", "note": "seed"}))
    write("safetensors", "scalar_and_empty.safetensors",
          safetensors([("scalar", "F32", [], struct.pack("<f", 1.5)), ("empty", "F32", [0, 3], b""),
                       ("vector", "I64", [2], struct.pack("<qq", -1, 2**62))], pad=False))
    write("safetensors", "empty_header.safetensors", safetensors([]))
    one = [("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))]
    write("safetensors", "invalid_header_length.safetensors", safetensors(one, header_length=10**6))
    write("safetensors", "invalid_truncated.safetensors", safetensors(one)[:-3])
    write("safetensors", "invalid_dtype.safetensors", safetensors([("w", "F8_E4M3", [4], b"\0" * 4)]))
    overlap = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
               "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}
    text = json.dumps(overlap).encode()
    write("safetensors", "invalid_overlap.safetensors", struct.pack("<Q", len(text)) + text + bytes(6))
    text = b'{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}'
    write("safetensors", "invalid_shape_overflow.safetensors", struct.pack("<Q", len(text)) + text + bytes(16))
    write("safetensors", "invalid_json.safetensors", struct.pack("<Q", 5) + b"{\"a\":")


# ---- tokenizer.json ---------------------------------------------------------------------------------------------
def write_tokenizer_seeds():
    with open(os.path.join(FIXTURES, "tokenizers", "llama3_style", "tokenizer.json"), encoding="utf-8") as f:
        llama3 = json.load(f)
    chars = byte_level_chars()
    # A Llama 3-style tokenizer cut down to the 256 byte tokens and the merges over them, plus a few more.
    vocab = {c: i for i, c in enumerate(chars)}
    merges = []
    for left, right in llama3["model"]["merges"]:
        if len(merges) == 24:
            break
        if left in vocab and right in vocab and left + right not in vocab:
            vocab[left + right] = len(vocab)
            merges.append([left, right])
    added = [dict(t, id=len(vocab) + k) for k, t in enumerate(llama3["added_tokens"])]
    cut = dict(llama3)
    cut["added_tokens"] = added
    cut["model"] = dict(llama3["model"], vocab=vocab, merges=merges)
    compact = json.dumps(cut, ensure_ascii=False, separators=(",", ":"))
    write("tokenizer", "llama3_style.json", compact)
    config = {"bos_token": added[0]["content"], "eos_token": added[2]["content"], "pad_token": added[1]["content"],
              "unk_token": None, "model_max_length": 8192, "additional_special_tokens": ["<mask>"],
              "added_tokens_decoder": {"1600": {"content": "<extra>", "special": True}}}
    write("tokenizer", "llama3_style_with_config.json",
          compact + "\n--config--\n" + json.dumps(config, ensure_ascii=False))

    # GPT-2 style: one ByteLevel pre-tokenizer with its regex, string merges, an unk token, no added tokens.
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({"\u0120t": 256, "he": 257, "\u0120the": 258, "<unk>": 259})
    gpt2 = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": False,
                      "byte_fallback": False, "vocab": vocab, "merges": ["\u0120 t", "h e", "\u0120t he"]}}
    write("tokenizer", "gpt2_style.json", json.dumps(gpt2, ensure_ascii=False, separators=(",", ":")))
    # Qwen2 style: NFC, a Sequence of Split and ByteLevel, a Digits step, special added tokens.
    qwen = json.loads(json.dumps(gpt2))
    qwen["normalizer"] = {"type": "NFC"}
    qwen["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "Split", "pattern": {"Regex": "\\p{L}+| ?\\p{N}|\\s+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    qwen["added_tokens"] = [
        {"id": 260, "content": "<|im_start|>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": 261, "content": "<|im_end|>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": 262, "content": "caf\u00e9", "single_word": True, "lstrip": True, "rstrip": True,
         "normalized": True, "special": False}]
    qwen["model"]["unk_token"] = None
    qwen["model"]["ignore_merges"] = True
    write("tokenizer", "qwen2_style.json", json.dumps(qwen, ensure_ascii=False, separators=(",", ":")) +
          "\n--config--\n" + json.dumps({"eos_token": "<|im_end|>", "pad_token": {"content": "<|im_start|>"}}))
    # Invalid ones: the errors a user meets.
    write("tokenizer", "invalid_sentencepiece.json", json.dumps(
        {"model": {"type": "BPE", "byte_fallback": True, "vocab": {"a": 0}, "merges": []},
         "pre_tokenizer": {"type": "Metaspace"}, "decoder": {"type": "ByteFallback"}}))
    write("tokenizer", "invalid_merge.json", json.dumps(
        {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]},
         "pre_tokenizer": {"type": "ByteLevel"}}))
    write("tokenizer", "invalid_unigram.json", json.dumps({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}))


# ---- chat templates ---------------------------------------------------------------------------------------------
def write_chat_template_seeds():
    folder = os.path.join(FIXTURES, "chat_templates", "templates")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        if len(text.encode("utf-8")) <= 5000:
            write("chat_template", name, text)
    with open(os.path.join(FIXTURES, "chat_templates", "jinja-constructs.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    for index, case in enumerate(cases):
        write("chat_template", "construct_%02d.jinja" % index, case["template"])
    write("chat_template", "invalid_unclosed.jinja", "{% for m in messages %}{{ m.content }")
    write("chat_template", "invalid_include.jinja", "{% include 'other.jinja' %}")
    write("chat_template", "raise.jinja", "{{ raise_exception('no system role') }}")
    # Regressions: each was a crash, a hang or unbounded memory before the engine bounded it.
    regressions = {
        "indent_width": "{{ 'a\nb' | indent(-5, true) }}{{ 'a\nb\nc' | indent(99999999999, true) }}",
        "repeat_empty": "{{ '' * 9223372036854775807 }}{{ [] * 9223372036854775807 }}",
        "integer_literal": "{{ 99999999999999999999 }}",
        "int_min": "{% set m = -9223372036854775807 - 1 %}{{ m % -1 }}{{ m is divisibleby(-1) }}{{ m // -1 }}",
        "int_min_negate": "{{ -(-9223372036854775807 - 1) }}",
        "int_min_abs": "{{ (-9223372036854775807 - 1) | abs }}",
        "int_filter": "{{ '1e300' | int }}{{ 1e300 | int }}{{ '99999999999999999999' | int }}",
        "sum_overflow": "{{ [9223372036854775807, 1] | sum }}{{ [9007199254740993] | sum }}",
        "namespace_cycle": "{% set ns = namespace(a=1) %}{% set ns.a = ns %}{% set ns.b = [ns] %}{{ ns }}",
        "nested_lists": "{% set ns = namespace(x=[]) %}{% for i in range(300) %}{% set ns.x = [ns.x] %}"
                        "{% endfor %}{{ ns.x | length }}",
        "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                    "{% endfor %}{{ ns.s | length }}",
        "macro_fork": "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                      "{{ f(60) }}",
        "parentheses": "{{ " + "(" * 400 + "1" + ")" * 400 + " }}",
        "unary_chain": "{{ " + "-" * 400 + "1 }}{{ " + "not " * 300 + "x }}",
        "concat_chain": "{{ " + " ~ ".join(["'a'"] * 300) + " }}",
        "filter_chain": "{{ 'a'" + "|trim" * 300 + " }}",
        "nested_blocks": "{%if 1%}" * 250 + "x" + "{%endif%}" * 250,
        "tojson_indent": "{{ [[1]] | tojson(indent=999999999) }}",
        "list_repeat_bytes": "{% set s = 'x' * 60000000 %}{{ ([s] * 100000) | length }}",
        "string_to_list": "{% set s = 'x,' * 20000000 %}{{ s | list | length }}{{ s.split(',') | length }}",
    }
    for name, text in regressions.items():
        write("chat_template", "regression_%s.jinja" % name, text)


# ---- datasets and configs ---------------------------------------------------------------------------------------
def write_text_seeds():
    write("dataset", "text_rows.jsonl",
          '{"prompt": "2+2?", "answer": "4"}\n\n   \n{"prompt": "3+5?", "answer": "8", "level": 1}\r\n')
    write("dataset", "conversation.jsonl",
          '{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], '
          '"tests": ["assert f(1) == 2"]}\n{"prompt": "plain", "meta": {"k": [1, 2.5, null, true]}}\n')
    write("dataset", "array.json", '[{"prompt": "a", "id": 1}, {"prompt": [{"role": "user", "content": "b"}]}]')
    write("dataset", "invalid_rows.jsonl",
          '{"prompt": 7}\n[1, 2]\n{"question": "no prompt"}\n{"prompt": [{"role": "user"}]}\n{"prompt": "a",}\n')
    write("dataset", "invalid_array.json", '{"prompt": "an object, not an array"}')

    write("config", "defaults.json", "{}")
    write("config", "dapo.json", json.dumps({
        "loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28, "beta": 0.0, "num_generations": 4,
        "scale_rewards": "batch", "reward_weights": [1.0, 0.5], "max_prompt_length": 128,
        "max_completion_length": 64, "temperature": 0.7, "top_p": 0.9, "top_k": 20, "min_p": 0.05,
        "learning_rate": 1e-5, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1,
        "per_device_train_batch_size": 8, "gradient_accumulation_steps": 2, "steps_per_generation": 4,
        "dynamic_sampling": True, "max_steps": 100, "seed": 18446744073709551615, "save_total_limit": 2,
        "eval_steps": None, "output_dir": "out", "importance_sampling_level": "sequence", "delta": None}, indent=2))
    write("config", "sapo.json", json.dumps({
        "loss_type": "sapo", "sapo_temperature_pos": 1.0, "sapo_temperature_neg": 1.05, "num_iterations": 2,
        "sync_ref_model": True, "beta": 0.04, "ref_model_mixup_alpha": 0.5, "ref_model_sync_steps": 64,
        "multi_objective_aggregation": "normalize_then_sum", "num_train_epochs": 0.5, "max_steps": -1,
        "bf16": True, "ddp_timeout": 600, "num_processes": 2, "log_prob_micro_batch_size": 16}))
    write("config", "invalid_unknown_key.json", '{"num_generation": 8}')
    write("config", "invalid_types.json", '{"num_generations": 2.5, "bf16": 1, "loss_type": 3}')
    write("config", "invalid_values.json", '{"num_generations": 3, "per_device_train_batch_size": 8, '
                                           '"temperature": -1, "top_p": 1e400}')


if __name__ == "__main__":
    write_gguf_seeds()
    write_safetensors_seeds()
    write_tokenizer_seeds()
    write_chat_template_seeds()
    write_text_seeds()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        total = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print("%-14s %3d files, %6d bytes" % (target, len(files), total))
