#!/usr/bin/env python3
"""Matrix-product and AdamW speeds of the PyTorch running it (2 threads): the kernels behind the GRPO step of the
side-by-side benchmark with TRL, for comparing Debian's python3-torch 1.13 (the same libtorch as libtorch-dev)
with the PyPI 2.13 wheel. `python3 kernel_speeds.py` (medians of 5; AdamW of 3)."""
import time

import torch

torch.set_num_threads(2)
def bench(f, n=5):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    ts.sort(); return ts[len(ts)//2]
for (m,k,n) in [(8,896,4864),(8,896,151936),(800,896,4864),(800,4864,896),(512,896,151936)]:
    a=torch.randn(m,k); b=torch.randn(n,k)
    s=bench(lambda: torch.mm(a,b.t()))
    print(f"{torch.__version__} mm [{m},{k}]x[{k},{n}]: {s*1e3:.2f} ms {2*m*k*n/s/1e9:.1f} GFLOP/s")
    a16=a.bfloat16(); b16=b.bfloat16()
    s=bench(lambda: torch.mm(a16,b16.t()))
    print(f"{torch.__version__} bf16 mm [{m},{k}]x[{k},{n}]: {s*1e3:.2f} ms {2*m*k*n/s/1e9:.1f} GFLOP/s")
p=[torch.nn.Parameter(torch.randn(4864,896)) for _ in range(24*3)]
for q in p: q.grad=torch.randn_like(q)
kw = {} if torch.__version__.startswith('1.') else {'foreach': False}
opt=torch.optim.AdamW(p, lr=1e-6, **kw)
s=bench(lambda: opt.step(), 3)
print(f"{torch.__version__} AdamW single-tensor 314M params: {s*1e3:.0f} ms")
if not torch.__version__.startswith('1.'):
    opt=torch.optim.AdamW(p, lr=1e-6, fused=True)
    s=bench(lambda: opt.step(), 3)
    print(f"{torch.__version__} AdamW fused 314M params: {s*1e3:.0f} ms")
