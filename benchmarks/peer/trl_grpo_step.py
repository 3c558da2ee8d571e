#!/usr/bin/env python3
"""Peer benchmark: wall time of GRPO optimizer steps in Hugging Face TRL's GRPOTrainer (CPU, one process).

Usage:
  python trl_grpo_step.py --model DIR_OR_GGUF --dataset PROMPTS.jsonl [--steps 4] [--num-generations 8]
      [--per-device-train-batch-size 8] [--max-prompt-length 128] [--max-completion-length 64] [--threads 2]
      [--beta 0.0] [--loss-type dapo] [--learning-rate 1e-6] [--temperature 1.0] [--gradient-checkpointing]
      [--seed 42]

--model is a Hugging Face folder (config.json + safetensors) or a .gguf file (loaded by transformers'
from_pretrained(folder, gguf_file=name), dequantised to float32, with the tokenizer from the same file).
--dataset is JSONL, one {"prompt": "..."} plain-text prompt a line (no chat template is applied).

What it measures, for each optimizer step (one generation batch per step: gradient_accumulation_steps = 1,
steps_per_generation = 1, num_iterations = 1):
  seconds             wall time from the Trainer's on_step_begin to on_step_end callbacks: generation of
                      per_device_train_batch_size completions (num_generations per prompt), reward, advantages,
                      the log-prob forward, the loss, backward, gradient clipping and the AdamW step;
  generation_seconds  time spent in GRPOTrainer._generate_single_turn, the method of this TRL version that pads the
                      prompt ids and calls model.generate() (sampling, KV cache) then cuts each row after its first
                      EOS;
  completion_tokens   completion tokens kept by TRL (up to and including the first EOS, no padding);
  train_seconds       seconds - generation_seconds.
The medians leave out the first step (warm-up) when there is more than one.
Memory: the process's resident set before training (after the model is loaded and the trainer built) and its peak
(getrusage ru_maxrss) at the end.

Reward (one function, reproduced in the C++ benchmark): digit_fraction = number of ASCII digit characters of the
decoded completion / max(1, number of characters), characters being Python str characters (Unicode code points);
completions are decoded with skip_special_tokens=True.

Prints ONE JSON object on stdout; everything else (TRL's logs, progress bars, the full config) goes to stderr.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

# Keep stdout for the JSON result alone: fd 1 is pointed at stderr for everything else (Python prints, tqdm, and
# C/C++ libraries alike), and the result is written to a duplicate of the original stdout.
_RESULT_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

import psutil  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def rss_mb():
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def digit_fraction(completions, **kwargs):
    """Reward: ASCII digits / max(1, characters) of each completion (plain strings)."""
    return [sum(1 for c in text if "0" <= c <= "9") / max(1, len(text)) for text in completions]


def load_model_and_tokenizer(path):
    if path.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(path))
        # dequantize=True: plain float32 nn.Linear weights. Without it transformers 5.x attaches a GGUF "quantizer" to
        # the model (and would keep the weights in GGUF blocks if the `kernels` package were installed), which the
        # Trainer refuses to fine-tune.
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, padding_side="left", truncation_side="left")
    else:
        # disable_mmap: read the weights into memory now, so that the resident set before training includes them
        # (a memory-mapped safetensors file is paged in lazily, during the first step).
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, disable_mmap=True)
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", truncation_side="left")
    return model.to(torch.float32), tokenizer


def load_prompts(path):
    prompts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                prompts.append(json.loads(line)["prompt"])
    if not prompts:
        raise SystemExit(f"{path}: no prompts")
    return Dataset.from_dict({"prompt": prompts})


class TimedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that left-truncates prompts and times its generation.

    TRL 1.x has no max_prompt_length any more, so prompts longer than max_prompt_length tokens keep their last
    max_prompt_length tokens (the left truncation older TRL versions applied)."""

    def __init__(self, *args, max_prompt_length=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_prompt_length = max_prompt_length
        self.generation_seconds = 0.0
        self.completion_tokens = 0
        self.generated_positions = 0  # rows x longest completion: what the batched generate computed
        self.generate_calls = 0
        self.truncated_prompts = 0

    def _tokenize_prompts(self, prompts):
        prompt_ids, images, multimodal_fields = super()._tokenize_prompts(prompts)
        if self.max_prompt_length is not None:
            self.truncated_prompts += sum(len(ids) > self.max_prompt_length for ids in prompt_ids)
            prompt_ids = [list(ids[-self.max_prompt_length :]) for ids in prompt_ids]
        return prompt_ids, images, multimodal_fields

    def _generate_single_turn(self, prompt_ids, *args, **kwargs):
        begin = time.perf_counter()
        completion_ids, logprobs = super()._generate_single_turn(prompt_ids, *args, **kwargs)
        self.generation_seconds += time.perf_counter() - begin
        self.generate_calls += 1
        lengths = [len(ids) for ids in completion_ids]
        self.completion_tokens += sum(lengths)
        self.generated_positions += len(lengths) * max(lengths, default=0)
        return completion_ids, logprobs


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, with the generation part of it."""

    def __init__(self):
        self.trainer = None
        self.steps = []
        self._begin = None

    def on_step_begin(self, args, state, control, **kwargs):
        t = self.trainer
        t.generation_seconds = 0.0
        t.completion_tokens = t.generated_positions = t.generate_calls = 0
        self._begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        seconds = time.perf_counter() - self._begin
        t = self.trainer
        self.steps.append(
            {
                "step": state.global_step,
                "seconds": seconds,
                "generation_seconds": t.generation_seconds,
                "completion_tokens": t.completion_tokens,
                "generated_positions": t.generated_positions,
                "generation_tokens_per_second": t.completion_tokens / t.generation_seconds
                if t.generation_seconds > 0
                else None,
                "train_seconds": seconds - t.generation_seconds,
                "generate_calls": t.generate_calls,
                "rss_mb": rss_mb(),
            }
        )
        log(f"[trl_grpo_step] step {state.global_step}: {seconds:.3f} s (generation {t.generation_seconds:.3f} s, "
            f"{t.completion_tokens} tokens; rest {seconds - t.generation_seconds:.3f} s)")

    def on_log(self, args, state, control, logs=None, **kwargs):
        # TRL's own metrics of the step just ended (loss, reward, completion lengths, entropy, ...)
        if logs and self.steps and self.steps[-1]["step"] == state.global_step and "loss" in logs:
            keep = ("loss", "reward", "reward_std", "entropy", "grad_norm", "learning_rate",
                    "completions/mean_length", "completions/clipped_ratio", "frac_reward_zero_std")
            self.steps[-1]["trl_log"] = {k: logs[k] for k in keep if k in logs}


def median_after_first(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values[1:] if len(values) > 1 else values)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--per-device-train-batch-size", type=int, default=8)
    p.add_argument("--max-prompt-length", type=int, default=128, help="left truncation in tokens; 0: none")
    p.add_argument("--max-completion-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--loss-type", default=None, help="default: TRL's default (dapo in TRL 1.x)")
    p.add_argument("--learning-rate", type=float, default=1e-6)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--gradient-checkpointing", action="store_true", help="TRL's own default is on; off here")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    torch.set_num_threads(args.threads)

    load_begin = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(args.model)
    load_seconds = time.perf_counter() - load_begin
    parameters = sum(p.numel() for p in model.parameters())
    rss_after_load = rss_mb()
    log(f"[trl_grpo_step] loaded {args.model}: {parameters} parameters, {type(model).__name__}, "
        f"{load_seconds:.1f} s, RSS {rss_after_load:.0f} MB; tokenizer {type(tokenizer).__name__}, "
        f"eos {tokenizer.eos_token!r}, pad {tokenizer.pad_token!r}, bos {tokenizer.bos_token!r}")

    dataset = load_prompts(args.dataset)

    config_kwargs = dict(
        output_dir=tempfile.mkdtemp(prefix="trl_grpo_step_"),
        max_steps=args.steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        beta=args.beta,
        learning_rate=args.learning_rate,
        temperature=args.temperature,
        gradient_checkpointing=args.gradient_checkpointing,
        seed=args.seed,
        bf16=False,
        fp16=False,
        use_cpu=True,
        use_vllm=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        dataloader_num_workers=0,
        shuffle_dataset=False,
        torch_compile=False,
        log_completions=False,
    )
    if args.loss_type is not None:
        config_kwargs["loss_type"] = args.loss_type
    config = GRPOConfig(**config_kwargs)

    timer = StepTimer()
    trainer = TimedGRPOTrainer(
        model=model,
        reward_funcs=[digit_fraction],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
        max_prompt_length=args.max_prompt_length or None,
    )
    timer.trainer = trainer
    log("[trl_grpo_step] effective GRPOConfig:\n" + config.to_json_string())
    log(f"[trl_grpo_step] loss_type {config.loss_type}, beta {config.beta}, epsilon {config.epsilon} / "
        f"{config.epsilon_high}, scale_rewards {config.scale_rewards}, gradient checkpointing "
        f"{config.gradient_checkpointing}, max_prompt_length {args.max_prompt_length} (this script)")
    log(f"[trl_grpo_step] eos ids ending a completion: {trainer.eos_token_ids}; pad id {tokenizer.pad_token_id}; "
        f"generation config: {trainer.generation_config.to_diff_dict()}")

    torch.set_num_threads(args.threads)  # in case anything above changed it
    rss_before = rss_mb()
    peak_before = peak_rss_mb()
    trainer.train()
    peak = peak_rss_mb()

    if len(timer.steps) != args.steps:
        log(f"[trl_grpo_step] warning: {len(timer.steps)} steps timed, {args.steps} asked")
    if any(s["generate_calls"] != 1 for s in timer.steps):
        log("[trl_grpo_step] warning: a step did not call generate exactly once")

    steps = timer.steps
    result = {
        "peer": "trl",
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "parameters": parameters,
        "dataset": args.dataset,
        "config": {
            "loss_type": config.loss_type,
            "beta": config.beta,
            "epsilon": config.epsilon,
            "epsilon_high": config.epsilon_high,
            "delta": config.delta,
            "scale_rewards": config.scale_rewards,
            "importance_sampling_level": config.importance_sampling_level,
            "mask_truncated_completions": config.mask_truncated_completions,
            "top_entropy_quantile": config.top_entropy_quantile,
            "entropy_coef": getattr(config, "entropy_coef", None),
            "num_generations": config.num_generations,
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "generation_batch_size": config.generation_batch_size,
            "steps_per_generation": config.steps_per_generation,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "num_iterations": config.num_iterations,
            "max_prompt_length": args.max_prompt_length or None,
            "max_prompt_length_by": "this script (left truncation of prompt ids); TRL 1.x has no max_prompt_length",
            "truncated_prompts": trainer.truncated_prompts,
            "max_completion_length": config.max_completion_length,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "top_k": config.top_k,
            "min_p": config.min_p,
            "repetition_penalty": config.repetition_penalty,
            "eos_token_ids": trainer.eos_token_ids,
            "pad_token_id": tokenizer.pad_token_id,
            "learning_rate": config.learning_rate,
            "lr_scheduler_type": str(getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type)),
            "warmup_steps": config.warmup_steps,
            "optim": str(getattr(config.optim, "value", config.optim)),
            "weight_decay": config.weight_decay,
            "adam_beta1": config.adam_beta1,
            "adam_beta2": config.adam_beta2,
            "adam_epsilon": config.adam_epsilon,
            "max_grad_norm": config.max_grad_norm,
            "gradient_checkpointing": config.gradient_checkpointing,
            "model_checkpointing_on": bool(getattr(trainer.model, "is_activation_checkpointing", False)),
            "bf16": config.bf16,
            "fp16": config.fp16,
            "shuffle_dataset": config.shuffle_dataset,
            "seed": config.seed,
            "reward": "digit_fraction",
        },
        "steps": steps,
        "median_step_seconds": median_after_first([s["seconds"] for s in steps]),
        "median_generation_seconds": median_after_first([s["generation_seconds"] for s in steps]),
        "median_generation_tokens_per_second": median_after_first([s["generation_tokens_per_second"] for s in steps]),
        "median_train_seconds": median_after_first([s["train_seconds"] for s in steps]),
        "load_seconds": load_seconds,
        "rss_after_load_mb": rss_after_load,
        "rss_before_training_mb": rss_before,
        "peak_rss_before_training_mb": peak_before,
        "peak_rss_mb": peak,
    }
    shutil.rmtree(config.output_dir, ignore_errors=True)  # save_strategy="no": nothing of value was written there
    _RESULT_OUT.write(json.dumps(result, indent=1) + "\n")
    _RESULT_OUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
