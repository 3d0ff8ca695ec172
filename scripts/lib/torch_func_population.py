"""PyTorch's model-ensembling recipe as the reference of scripts/bench-population.

MEMBERS MLPs 40-HIDDEN-HIDDEN-10, their weights stacked with
torch.func.stack_module_state and run with vmap(functional_call), each
member on its own shuffle of 10 000 examples, batch 32, one epoch, SGD with
momentum over the stacked weights (the sum of the members' mean losses, so
each member gets its own gradient). Writes the training loop's seconds to
OUT.

    python torch_func_population.py MEMBERS HIDDEN THREADS OUT
"""

import copy
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

members, hidden, threads, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
torch.manual_seed(0)
n, features, classes, batch = 10_000, 40, 10, 32
x = torch.randn(n, features)
y = torch.randint(0, classes, (n,))


def mlp():
    return nn.Sequential(
        nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes)
    )


models = [mlp() for _ in range(members)]
params, buffers = stack_module_state(models)
params = {k: v.detach().requires_grad_() for k, v in params.items()}
base = copy.deepcopy(models[0]).to("meta")
optimizer = torch.optim.SGD(params.values(), lr=0.05, momentum=0.9)


def forward(p, b, xb):
    return functional_call(base, (p, b), (xb,))


batched = torch.vmap(forward)
started = time.perf_counter()
orders = torch.stack([torch.randperm(n) for _ in range(members)])
for start in range(0, n, batch):
    ids = orders[:, start : start + batch]
    logits = batched(params, buffers, x[ids])
    per_member = F.cross_entropy(logits.reshape(-1, classes), y[ids].reshape(-1), reduction="none")
    loss = per_member.view(members, -1).mean(1).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
seconds = time.perf_counter() - started
with open(out, "w") as f:
    f.write(f"{seconds}\n")
