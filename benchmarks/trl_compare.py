#!/usr/bin/env python3
"""grpo-cpp against TRL, side by side in one run, on the same models and the same work.

For each model (SmolLM2-135M-Instruct from its GGUF file, and a Qwen2.5-0.5B-shaped random model in a Hugging Face
folder), one process at a time and with the same thread count:
  - GRPO training steps: TRL's GRPOTrainer (peer/trl_grpo_step.py) and the library's GRPOTrainer
    (bench_trl_compare, built against Debian's LibTorch and against the PyTorch wheel's); same prompts, reward
    (digit_fraction), num_generations, batch, lengths, loss type, learning rate, beta;
  - generation alone at G = 8 (one prompt repeated, every row exactly N new tokens): transformers' generate
    (peer/transformers_generate.py) against the library's generate;
  - optionally (--bf16) the library's steps under bf16 autocast, and (--long) one step at 8 x 256 completion tokens on the larger model with the chunked LM head and with
    full [B,T,V] logits, and TRL's, for peak memory.
Prints a Markdown table and writes every run's JSON to --out.

  python3 benchmarks/trl_compare.py --python VENV/bin/python --cpp build-bench/benchmarks/bench_trl_compare \
      [--cpp-wheel build-torch-wheel/benchmarks/bench_trl_compare] --model smollm2=PATH.gguf --model qwen05=DIR \
      --prompts prompts.jsonl [--threads 2] [--steps 3] [--tokens 64] [--bf16] [--long] --out results.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(command, label):
    """Runs one side; returns its JSON (the last stdout line)."""
    print(f"== {label}: {' '.join(command)}", file=sys.stderr, flush=True)
    start = time.time()
    env = dict(os.environ, OMP_WAIT_POLICY="passive", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{label} failed (exit {done.returncode})")
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"{label} printed no JSON object on stdout:\n{done.stdout[-2000:]}")
    result["label"] = label
    result["wall_seconds"] = time.time() - start
    print(f"   {label}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="a Python with torch 2.13, transformers and trl")
    parser.add_argument("--cpp", required=True, help="bench_trl_compare built against Debian's LibTorch")
    parser.add_argument("--cpp-wheel", help="bench_trl_compare built against the PyTorch wheel's LibTorch")
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH (a .gguf file or an HF folder)")
    parser.add_argument("--prompts", required=True, help="JSONL with a 'prompt' column")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run; the first is a warm-up")
    parser.add_argument("--tokens", type=int, default=64, help="max_completion_length of the training runs")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--bf16", action="store_true", help="also the library's training steps with bf16 autocast")
    parser.add_argument("--long", action="store_true", help="also 8 x 256 on the last model: chunked vs full logits")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    common = ["--dataset", args.prompts, "--threads", str(args.threads), "--num-generations", str(args.generations),
              "--max-prompt-length", "128", "--beta", "0", "--loss-type", "dapo", "--learning-rate", "1e-6"]
    cpp_sides = [("grpo-cpp (LibTorch 1.13)", args.cpp)]
    if args.cpp_wheel:
        cpp_sides.append(("grpo-cpp (LibTorch 2.13)", args.cpp_wheel))
    trl = [args.python, os.path.join(HERE, "peer", "trl_grpo_step.py"),
           "--per-device-train-batch-size", str(args.generations)]
    results = []

    def record(command, label, name):
        results.append(run(command, label) | {"model_name": name})

    for spec in args.model:
        name, path = spec.split("=", 1)
        train = common + ["--model", path, "--steps", str(args.steps), "--max-completion-length", str(args.tokens)]
        record(trl + train, f"{name} train TRL", name)
        for label, binary in cpp_sides:
            record([binary, "--batch", str(args.generations)] + train, f"{name} train {label}", name)
            if args.bf16:
                record([binary, "--batch", str(args.generations), "--bf16"] + train, f"{name} train {label} bf16",
                       name)
        generate = ["--model", path, "--dataset", args.prompts, "--threads", str(args.threads),
                    "--num-generations", str(args.generations)]
        record([args.python, os.path.join(HERE, "peer", "transformers_generate.py"), "--new-tokens", str(args.tokens)]
               + generate, f"{name} generate transformers", name)
        for label, binary in cpp_sides:
            record([binary, "--generate-only", "--max-completion-length", str(args.tokens)] + generate,
                   f"{name} generate {label}", name)
    if args.long:
        name, path = args.model[-1].split("=", 1)
        long = common + ["--model", path, "--steps", "1", "--max-completion-length", "256"]
        record(trl + long, f"{name} 8x256 TRL", name)
        record([args.cpp, "--batch", str(args.generations)] + long, f"{name} 8x256 grpo-cpp chunked", name)
        record([args.cpp, "--batch", str(args.generations), "--full-logits"] + long,
               f"{name} 8x256 grpo-cpp full logits", name)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print_table(results)


def print_table(results):
    print("| run | step s (median) | generation tok/s | log-probs + loss + backward + optimizer s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for r in results:
        if r.get("mode") == "generate" or "generate" in r["label"]:
            print(f"| {r['label']} | | {r['median_tokens_per_second']:.1f} | | {r.get('peak_rss_mb', 0):.0f} |")
            continue
        step = r.get("median_step_seconds") or (r["steps"][-1]["seconds"] if r.get("steps") else 0)
        gen = r.get("median_rollout_tokens_per_second") or r.get("median_generation_tokens_per_second") or 0
        train = r.get("median_train_seconds") or 0
        print(f"| {r['label']} | {step:.2f} | {gen:.1f} | {train:.2f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
