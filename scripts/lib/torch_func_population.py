"""PyTorch's model-ensembling recipe as the reference of scripts/bench-population.

MEMBERS MLPs 40-MODEL-MODEL-10 (MODEL a width) or CNNs [16, 32] (MODEL =
cnn: as Tessera's, 3×3 convolutions on a 1×40 image, 2-wide max pools, a
global average pool, a linear head), their weights stacked with
torch.func.stack_module_state and run with vmap(functional_call), each
member on its own shuffle of 10 000 examples, batch 32, one epoch, SGD with
momentum over the stacked weights (the sum of the members' mean losses, so
each member gets its own gradient), on DEVICE (cpu, the default, or
cuda). Writes the training loop's seconds to OUT.

    python torch_func_population.py MEMBERS MODEL THREADS OUT [DEVICE]
"""

import copy
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

members, model, threads, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
torch.set_num_threads(threads)
torch.manual_seed(0)
n, features, classes, batch = 10_000, 40, 10, 32
x = torch.randn(n, features, device=device)
y = torch.randint(0, classes, (n,), device=device)


def mlp(hidden):
    return nn.Sequential(
        nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes)
    )


def cnn():
    return nn.Sequential(
        nn.Unflatten(1, (1, 1, features)),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d((1, 2)),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d((1, 2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes),
    )


models = [(cnn() if model == "cnn" else mlp(int(model))).to(device) for _ in range(members)]
params, buffers = stack_module_state(models)
params = {k: v.detach().requires_grad_() for k, v in params.items()}
base = copy.deepcopy(models[0]).to("meta")
optimizer = torch.optim.SGD(params.values(), lr=0.05, momentum=0.9)


def forward(p, b, xb):
    return functional_call(base, (p, b), (xb,))


batched = torch.vmap(forward)

def synchronize():
    if device.type == "cuda":
        torch.cuda.synchronize()


synchronize()
started = time.perf_counter()
orders = torch.stack([torch.randperm(n, device=device) for _ in range(members)])
for start in range(0, n, batch):
    ids = orders[:, start : start + batch]
    logits = batched(params, buffers, x[ids])
    per_member = F.cross_entropy(logits.reshape(-1, classes), y[ids].reshape(-1), reduction="none")
    loss = per_member.view(members, -1).mean(1).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
synchronize()
seconds = time.perf_counter() - started
with open(out, "w") as f:
    f.write(f"{seconds}\n")
