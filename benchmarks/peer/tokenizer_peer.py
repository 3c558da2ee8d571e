#!/usr/bin/env python3
"""Python peer of benchmarks/tokenizer_bench.cpp: Hugging Face's tokenizers on the same corpus and tokenizers.

    tokenizer_peer.py <source fixtures dir> <unpacked fixtures dir> <seconds> <reps>

Prints one JSON object: per tokenizer the load time, the first pass over the corpus (encode per line), the median
warm pass (encode per line) and the median warm pass of encode_batch over the whole corpus, in seconds. Run it with
RAYON_NUM_THREADS=1 for one thread (the C++ driver does). Ids are checked against expected.json first.
"""

import json
import os
import platform
import sys
import time

import tokenizers
from tokenizers import Tokenizer, pre_tokenizers


def load_smollm2(unpacked):
    """SmolLM2's tokenizer as tests/fixtures/tokenizers/make_fixtures.py builds the reference: transformers'
    tokenizer.json of the GGUF with its vocabulary and merges, and SmolLM2's own pre-tokenizer."""
    with open(os.path.join(unpacked, "smollm2", "gguf_vocabulary.json"), encoding="utf-8") as f:
        vocabulary = json.load(f)
    with open(os.path.join(unpacked, "smollm2", "transformers_tokenizer_without_vocab.json"), encoding="utf-8") as f:
        skeleton = json.load(f)
    skeleton["model"]["vocab"] = {token: i for i, token in enumerate(vocabulary["tokens"])}
    skeleton["model"]["merges"] = [merge.split(" ") for merge in vocabulary["merges"]]
    tokenizer = Tokenizer.from_str(json.dumps(skeleton))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return tokenizer


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    source, unpacked, seconds, reps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    with open(os.path.join(source, "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    with open(os.path.join(source, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    loaders = {
        "qwen3": lambda: Tokenizer.from_file(os.path.join(unpacked, "qwen3", "tokenizer.json")),
        "smollm2": lambda: load_smollm2(unpacked),
        "llama3_style": lambda: Tokenizer.from_file(os.path.join(source, "llama3_style", "tokenizer.json")),
    }
    out = {"tokenizers_version": tokenizers.__version__, "python_version": platform.python_version()}
    for name, load in loaders.items():
        start = time.perf_counter()
        tokenizer = load()
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        ids = [tokenizer.encode(line, add_special_tokens=False).ids for line in corpus]
        first_pass_s = time.perf_counter() - start
        if ids != expected[name]["ids"]:
            raise SystemExit(f"{name}: ids differ from expected.json")

        def timed(work):
            per_pass = []
            for _ in range(reps):
                passes = 0
                start = time.perf_counter()
                while True:
                    work()
                    passes += 1
                    if time.perf_counter() - start >= seconds / reps:
                        break
                per_pass.append((time.perf_counter() - start) / passes)
            return median(per_pass)

        warm = timed(lambda: [tokenizer.encode(line, add_special_tokens=False) for line in corpus])
        batch = timed(lambda: tokenizer.encode_batch(corpus, add_special_tokens=False))
        out[name] = {"load_s": load_s, "first_pass_s": first_pass_s, "warm_pass_s": warm, "batch_pass_s": batch}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
