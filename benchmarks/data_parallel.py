#!/usr/bin/env python3
"""Data-parallel scaling of grpo-train: the same global batch trained by one process and by P processes.

Launches the ranks itself with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT), reads each run's metrics.jsonl and prints the median step time (steps after the first), its parts
(timing/rollout, timing/log_probs, timing/update) and the ratio to one process, plus the bytes each rank sends per
step. Standard library only.

  python3 benchmarks/data_parallel.py --grpo-train build/tools/grpo-train \\
      --model build/models/SmolLM2-135M-Instruct.Q4_1.gguf --processes 2 --threads 2 --steps 6
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_inputs(folder, model, rows_per_step, processes, threads, steps, tokens):
    data = os.path.join(folder, "train.jsonl")
    with open(data, "w") as f:
        for a in range(10, 40):
            f.write(json.dumps({"prompt": f"Question: what is {a} plus {a + 7}? Answer:", "answer": str(2 * a + 7)}) + "\n")
    run = {
        "model": os.path.abspath(model),
        "train_dataset": data,
        "rewards": [{"type": "accuracy", "column": "answer", "comparison": "numeric"}],
        "torch_threads": threads,
        "num_generations": 4,
        "per_device_train_batch_size": rows_per_step // processes,
        "max_completion_length": tokens,
        "max_prompt_length": 64,
        "learning_rate": 1e-6,
        "max_steps": steps,
        "logging_steps": 1,
        "save_steps": 0,
        "log_completions": False,
        "seed": 3,
        "save_model": False,
    }
    path = os.path.join(folder, f"run-{processes}.json")
    with open(path, "w") as f:
        json.dump(run, f)
    return path


def launch(grpo_train, run_path, output_dir, processes):
    port = free_port()
    env_base = dict(os.environ, OMP_WAIT_POLICY="passive")
    ranks = []
    start = time.monotonic()
    for rank in range(processes):
        env = dict(env_base)
        if processes > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        log = open(os.path.join(os.path.dirname(run_path), f"rank{rank}-{processes}.log"), "w")
        ranks.append((subprocess.Popen([grpo_train, run_path, "--output-dir", output_dir], env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    codes = [p.wait() for p, _ in ranks]
    wall = time.monotonic() - start
    if any(codes):
        for rank, (_, log) in enumerate(ranks):
            log.close()
            sys.stderr.write(open(log.name).read())
        raise SystemExit(f"grpo-train failed with exit codes {codes}")
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()], wall


def median_after_first(records, key):
    values = [r[key] for r in records[1:] if key in r]
    return statistics.median(values) if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grpo-train", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="LibTorch threads of the single process; each of P ranks "
                    "gets threads / P")
    ap.add_argument("--rows", type=int, default=16, help="completions per optimizer step (global)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()

    folder = tempfile.mkdtemp(prefix="grpo-dp-bench-")
    results = {}
    for processes, threads in ((1, args.threads), (args.processes, max(1, args.threads // args.processes))):
        run = write_inputs(folder, args.model, args.rows, processes, threads, args.steps, args.tokens)
        records, wall = launch(args.grpo_train, run, os.path.join(folder, f"out-{processes}"), processes)
        results[processes] = (threads, records, wall)

    print(f"{args.rows} completions per step (G = 4), at most {args.tokens} tokens, {args.steps} steps; medians of "
          f"steps 2-{args.steps}")
    print("| processes x threads | step s | rollout s | log-probs s | update s (of which gradient all-reduce) | "
          "mean completion tokens | step vs 1 process |")
    print("|---|---|---|---|---|---|---|")
    base = median_after_first(results[1][1], "step_time")
    for processes, (threads, records, wall) in results.items():
        step = median_after_first(records, "step_time")
        print(f"| {processes} x {threads} | {step:.2f} | {median_after_first(records, 'timing/rollout'):.2f} | "
              f"{median_after_first(records, 'timing/log_probs'):.2f} | "
              f"{median_after_first(records, 'timing/update'):.2f} "
              f"({median_after_first(records, 'timing/gradient_all_reduce'):.2f}) | "
              f"{median_after_first(records, 'completions/mean_length'):.1f} | {base / step:.2f}x |")
    print(f"(runs in {folder})")


if __name__ == "__main__":
    main()
