#!/usr/bin/env python3
"""Write a Qwen2.5-0.5B-shaped causal LM with random weights, for the TRL peer benchmark.

Usage: python make_random_qwen.py OUT_DIR [--layers N] [--tokenizer DIR]

OUT_DIR gets config.json, generation_config.json and model.safetensors (float32, transformers' save_pretrained) plus
tokenizer.json and tokenizer_config.json copied from the Qwen3 tokenizer fixture (same vocabulary as Qwen2.5). The
weights come from the model's own initialisation (normal, std = initializer_range) after torch.manual_seed(0), so two
runs give the same file. --layers lowers num_hidden_layers (24 in Qwen2.5-0.5B) for quick smoke tests.

The shape is Qwen2.5-0.5B's: hidden 896, MLP 4864, 14 query heads and 2 key/value heads of 64, vocabulary 151,936,
RoPE theta 1e6, RMSNorm eps 1e-6, SiLU, biases on q/k/v only, tied input and output embeddings (494M parameters).
The eos/pad/bos ids follow Qwen2.5-Instruct: eos <|im_end|> (151645) and <|endoftext|> (151643), pad and bos
<|endoftext|>. generation_config.json holds only these ids (no sampling defaults such as top_k or a repetition penalty,
which would otherwise leak into the benchmarks' generate calls).
"""

import argparse
import os
import shutil
import sys

import torch
from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

DEFAULT_TOKENIZER = "/work/shared/fixtures/qwen3-tokenizer"
ENDOFTEXT_ID = 151643  # <|endoftext|>
IM_END_ID = 151645  # <|im_end|>


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--layers", type=int, default=24, help="num_hidden_layers (Qwen2.5-0.5B: 24)")
    parser.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="folder with tokenizer.json and tokenizer_config.json")
    args = parser.parse_args()

    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=args.layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        attention_dropout=0.0,
        initializer_range=0.02,
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=IM_END_ID,
        pad_token_id=ENDOFTEXT_ID,
        dtype="float32",
    )

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ENDOFTEXT_ID, eos_token_id=[IM_END_ID, ENDOFTEXT_ID], pad_token_id=ENDOFTEXT_ID
    )

    os.makedirs(args.out_dir, exist_ok=True)
    model.save_pretrained(args.out_dir, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(args.tokenizer, name), os.path.join(args.out_dir, name))

    # The tokenizer must load from OUT_DIR alone.
    tokenizer = AutoTokenizer.from_pretrained(args.out_dir)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    ids = tokenizer("Hello, world! 12 + 30 = 42")["input_ids"]

    parameters = sum(p.numel() for p in model.parameters())  # tied embeddings are counted once
    print(f"wrote {args.out_dir}: {parameters} parameters ({parameters / 1e6:.1f}M), {args.layers} layers, float32")
    print(
        f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} tokens, eos {tokenizer.eos_token!r} "
        f"({tokenizer.eos_token_id}), pad {tokenizer.pad_token!r} ({tokenizer.pad_token_id}), "
        f"bos {tokenizer.bos_token!r}, chat template: {'yes' if has_template else 'no'}; "
        f"'Hello, world! 12 + 30 = 42' -> {ids}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
