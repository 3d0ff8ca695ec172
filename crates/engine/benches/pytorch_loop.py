"""The PyTorch side of `train_vs_pytorch`: the same models, data sizes, batch
size, optimizer and thread count as Tessera's trainer, in a plain loop.
Prints one JSON line: {"examples_per_second": ...}."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class GlobalMean(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def model(kind):
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        GlobalMean(), nn.Linear(32, 10),
    )


def main():
    kind, n, epochs, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape = (n, 64) if kind == "mlp" else (n, 1, 8, 8)
    x_all, y_all = torch.randn(shape), torch.randint(0, 10, (n,))
    net = model(kind)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    seconds, examples = 0.0, 0
    for epoch in range(epochs):
        started = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(net(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
        if epoch > 0:  # the first epoch warms up
            seconds += time.perf_counter() - started
            examples += n
    print(json.dumps({"examples_per_second": examples / seconds}))


if __name__ == "__main__":
    main()
