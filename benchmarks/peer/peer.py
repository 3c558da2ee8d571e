#!/usr/bin/python3
"""Python peer of grpo-cpp's benchmarks: eager PyTorch, torch only (no transformers, no TRL).

Usage: /usr/bin/python3 benchmarks/peer/peer.py DIR [--check-logits] [--section loss|forward|generate]
                                                  [--threads N] [--reps N]
(--section runs one part only: the C++ driver alternates with its own timings so both see the same machine load.)

DIR is written by bench_peer_compare (benchmarks/peer_compare.cpp): inputs.safetensors holds the loss inputs
("<B>x<T>/logps|old_logps|advantages|mask"), the model's input ids and attention mask and the C++ logits;
config.json + model.safetensors hold the model; run.json the shapes and counts. Prints one JSON object on stdout.

(i)  TRL's policy loss (dapo, the default) written from docs/math.md sections 3-6: forward, backward, clip metrics.
(ii) The built-in Llama model's forward with Hugging Face semantics (RMSNorm in float32, rotate_half RoPE with
     inv_freq = 1/theta^(arange(0,d,2)/d), grouped-query attention via repeat_kv, SwiGLU, tied embeddings, position
     ids = cumsum(attention_mask) - 1), and a plain greedy generate loop with and without a KV cache.

Exit code 77 when torch cannot be imported (CTest treats it as "skipped").
"""

import json
import math
import os
import struct
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"skipped": "python3 has no torch module (Debian: apt-get install python3-torch)"}))
    sys.exit(77)

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path):
    """safetensors: 8-byte little-endian header length, a JSON header, then the raw little-endian data."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_length])
    data = bytearray(blob[8 + header_length :])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        shape = entry["shape"]
        if end == begin:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            count = (end - begin) // torch.empty(0, dtype=dtype).element_size()
            flat = torch.frombuffer(data, dtype=dtype, count=count, offset=begin)
            tensors[name] = flat.reshape(shape).clone()
    return tensors


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def time_it(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median(samples), samples


# ---------------------------------------------------------------------------------------------------------------
# (i) TRL's loss, docs/math.md sections 3-6, loss_type dapo, token-level importance sampling, beta = 0.


def masked_batch_mean(x, mask):
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def nanmin(x):
    kept = x[~torch.isnan(x)]
    return kept.min() if kept.numel() else torch.tensor(float("nan"))


def nanmax(x):
    kept = x[~torch.isnan(x)]
    return kept.max() if kept.numel() else torch.tensor(float("nan"))


def trl_dapo_loss(logps, old_logps, advantages, mask, num_items_in_batch, epsilon_low=0.2, epsilon_high=0.2):
    # section 3: per-token importance ratio
    log_ratio = logps - old_logps
    coef_1 = torch.exp(log_ratio)
    # section 4: clipped surrogate
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    adv = advantages.unsqueeze(1)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    # section 5: dapo normalises by the active tokens of the generation batch (one process)
    loss = (per_token_loss * mask).sum() / max(num_items_in_batch, 1.0)
    # section 6: clip metrics
    with torch.no_grad():
        is_low = ((coef_1 < 1 - epsilon_low) & (adv < 0)).float()
        is_high = ((coef_1 > 1 + epsilon_high) & (adv > 0)).float()
        is_region = ((is_low + is_high) > 0).float()
        lengths = mask.sum(1)
        metrics = torch.stack(
            [
                masked_batch_mean(is_low, mask),
                masked_batch_mean(is_high, mask),
                masked_batch_mean(is_region, mask),
                nanmin((is_low * mask).sum(1) / lengths),
                nanmax((is_high * mask).sum(1) / lengths),
            ]
        ).tolist()  # one sync, as a trainer logging them would do
    names = [
        "clip_ratio/low_mean",
        "clip_ratio/high_mean",
        "clip_ratio/region_mean",
        "clip_ratio/low_min",
        "clip_ratio/high_max",
    ]
    return loss, dict(zip(names, metrics))


def bench_loss(inputs, shapes, reps):
    results = {}
    for rows, tokens in shapes:
        key = f"{rows}x{tokens}"
        base = inputs[f"{key}/logps"]
        old_logps = inputs[f"{key}/old_logps"]
        advantages = inputs[f"{key}/advantages"]
        mask = inputs[f"{key}/mask"]
        num_items = float(mask.sum().item())
        out = {}

        def step():
            logps = base.clone().requires_grad_()
            loss, metrics = trl_dapo_loss(logps, old_logps, advantages, mask, num_items)
            loss.backward()
            out.update(logps=logps, loss=loss, metrics=metrics)

        seconds, _ = time_it(step, reps, warmup=2)
        results[key] = {
            "median_ms": 1e3 * seconds,
            "loss": out["loss"].item(),
            "grad_abs_sum": out["logps"].grad.abs().sum().item(),
            "metrics": out["metrics"],
        }
    return results


# ---------------------------------------------------------------------------------------------------------------
# (ii) The Llama-family model, Hugging Face semantics, on plain tensors.


class Llama:
    def __init__(self, config, weights):
        self.c = config
        self.w = {name: t.float() for name, t in weights.items()}
        c = config
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.layers = c["num_hidden_layers"]
        theta = c.get("rope_theta", 10000.0)
        d = self.head_dim
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        self.lm_head = self.w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else self.w["lm_head.weight"]

    def rms_norm(self, x, weight):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    @staticmethod
    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def linear(self, x, name):
        bias = self.w.get(name + ".bias")
        return torch.nn.functional.linear(x, self.w[name + ".weight"], bias)

    def forward(self, input_ids, attention_mask, cache=None):
        """input_ids [B,L]; attention_mask [B,P+L] over cached + current tokens; cache: list of (k, v) per layer or
        None. Returns logits [B,L,V]."""
        batch, length = input_ids.shape
        past = cache[0][0].shape[2] if cache else 0
        total = past + length
        mask = attention_mask != 0
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        freqs = positions[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # [B,1,L,d]
        cos, sin = emb.cos(), emb.sin()
        key_index = torch.arange(total)[None, :]
        query_index = torch.arange(past, total)[:, None]
        # causal and padding; each query also sees itself so rows of padding stay finite (never read)
        allowed = (mask[:, None, None, :] & (key_index <= query_index)) | (key_index == query_index)  # [B,1,L,S]
        h = torch.nn.functional.embedding(input_ids, self.w["model.embed_tokens.weight"])
        group = self.heads // self.kv_heads
        scale = 1.0 / math.sqrt(self.head_dim)
        for i in range(self.layers):
            p = f"model.layers.{i}."
            x = self.rms_norm(h, self.w[p + "input_layernorm.weight"])
            q = self.linear(x, p + "self_attn.q_proj").view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            k = self.linear(x, p + "self_attn.k_proj").view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            v = self.linear(x, p + "self_attn.v_proj").view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            if cache is not None:
                if len(cache) > i:
                    k = torch.cat((cache[i][0], k), dim=2)
                    v = torch.cat((cache[i][1], v), dim=2)
                    cache[i] = (k, v)
                else:
                    cache.append((k, v))
            k_rep = k.repeat_interleave(group, dim=1)  # HF's repeat_kv
            v_rep = v.repeat_interleave(group, dim=1)
            scores = torch.matmul(q, k_rep.transpose(-1, -2)) * scale
            scores = scores.masked_fill(~allowed, float("-inf"))
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(probs, v_rep).transpose(1, 2).reshape(batch, length, self.heads * self.head_dim)
            h = h + self.linear(out, p + "self_attn.o_proj")
            x = self.rms_norm(h, self.w[p + "post_attention_layernorm.weight"])
            mlp = torch.nn.functional.silu(self.linear(x, p + "mlp.gate_proj")) * self.linear(x, p + "mlp.up_proj")
            h = h + self.linear(mlp, p + "mlp.down_proj")
        h = self.rms_norm(h, self.w["model.norm.weight"])
        return torch.matmul(h, self.lm_head.t())


def greedy_generate(model, prompt_ids, prompt_mask, new_tokens, use_cache):
    """Plain greedy loop, no EOS: every row gets exactly new_tokens tokens."""
    with torch.no_grad():
        ids, mask = prompt_ids, prompt_mask
        cache = [] if use_cache else None
        logits = model.forward(ids, mask, cache)
        generated = []
        for step in range(new_tokens):
            next_token = logits[:, -1].argmax(-1)
            generated.append(next_token)
            if step + 1 == new_tokens:
                break
            mask = torch.cat((mask, torch.ones_like(next_token)[:, None]), dim=1)
            if use_cache:
                logits = model.forward(next_token[:, None], mask, cache)
            else:
                ids = torch.cat((prompt_ids, torch.stack(generated, 1)), dim=1)
                logits = model.forward(ids, mask, None)
        return torch.stack(generated, 1)


def check_logits(model, inputs):
    ids, mask, reference = inputs["model/input_ids"], inputs["model/attention_mask"], inputs["model/cpp_logits"]
    with torch.no_grad():
        logits = model.forward(ids, mask)
    active = mask != 0
    diff = (logits - reference).abs()[active]
    return {
        "max_abs_diff": diff.max().item(),
        "compared_logits": diff.numel(),
        "max_abs_logit": reference.abs().max().item(),
    }


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    folder = args[0]
    check_only = "--check-logits" in args
    sections = {"loss", "forward", "generate"}
    if "--section" in args:
        sections = {args[args.index("--section") + 1]}
    run = json.load(open(os.path.join(folder, "run.json")))
    threads = run.get("threads", 1)
    reps = run.get("reps", 5)
    if "--threads" in args:
        threads = int(args[args.index("--threads") + 1])
    if "--reps" in args:
        reps = int(args[args.index("--reps") + 1])
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    inputs = read_safetensors(os.path.join(folder, "inputs.safetensors"))
    config = json.load(open(os.path.join(folder, "config.json")))
    model = Llama(config, read_safetensors(os.path.join(folder, "model.safetensors")))
    result = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "reps": reps}
    result["logits"] = check_logits(model, inputs)
    if check_only:
        print(json.dumps(result))
        return

    if "loss" in sections:
        result["loss"] = bench_loss(inputs, [tuple(s) for s in run["loss_shapes"]], run.get("loss_reps", reps))

    ids, mask = inputs["model/input_ids"], inputs["model/attention_mask"]

    def forward():
        with torch.no_grad():
            model.forward(ids, mask)

    if "forward" in sections:
        seconds, _ = time_it(forward, reps)
        result["forward"] = {"median_ms": 1e3 * seconds, "tokens": ids.numel()}
    if "generate" not in sections:
        print(json.dumps(result))
        return

    prompt_ids, prompt_mask = inputs["generate/prompt_ids"], inputs["generate/prompt_mask"]
    generation = {}
    parts = (("kv_cache", True, run["new_tokens_cache"]), ("no_cache", False, run["new_tokens_no_cache"]))
    for label, use_cache, new_tokens in parts:
        out = {}

        def gen():
            out["tokens"] = greedy_generate(model, prompt_ids, prompt_mask, new_tokens, use_cache)

        seconds, _ = time_it(gen, max(1, reps // 2 if not use_cache else reps))
        produced = out["tokens"]
        reference = inputs.get(f"generate/cpp_{label}")
        agree = -1.0  # not comparable
        if reference is not None and reference.shape == produced.shape:
            agree = (reference == produced).float().mean().item()
        generation[label] = {
            "median_ms": 1e3 * seconds,
            "new_tokens": new_tokens,
            "tokens_per_s": produced.numel() / seconds,
            "same_tokens_as_cpp": agree,
        }
    result["generate"] = generation
    print(json.dumps(result))


if __name__ == "__main__":
    main()
