"""How fast the batched CNN's convolutions run in each layout (issue 39).

Tessera trains K CNNs [16, 32] (3x3 convolutions on a 1x40 input, 2-wide max
pools, a global average pool) as one model whose convolutions are grouped
(group k is member k's filters), in channels-last memory: fastest on a CPU.
On an H100 the batched CNN reached only 7-12x the members trained alone
(the MLPs 21-28x), its steps 2.1-2.9 ms. This times one forward and backward
pass of that stack, K = 32 members, batch 32, each way that could replace it:
grouped convolutions in NCHW or channels-last memory, with and without
cuDNN's benchmark mode, and im2col + one batched matrix product per layer.
Each way's output and gradients are compared with the first's (relative to
the largest value).

    python3 scripts/lib/conv_layouts.py [cpu|cuda] [ROUNDS]
"""
import sys
import time

import torch
import torch.nn.functional as F

device = torch.device(sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
torch.set_num_threads(1)
K, B, W, CHANNELS = 32, 32, 40, [1, 16, 32]


def synchronize():
    if device.type == "cuda":
        torch.cuda.synchronize()


def grouped(x, weights, biases, channels_last):
    h = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    for w, b in zip(weights, biases):
        h = F.max_pool2d(F.relu(F.conv2d(h, w, b, padding=1, groups=K)), (1, 2))
    return h.mean((2, 3))


def im2col(x, weights, biases):
    h = x
    for w, b in zip(weights, biases):
        n, kc, height, width = h.shape
        c, out = kc // K, w.shape[0] // K
        cols = F.unfold(h, 3, padding=1).view(n, K, c * 9, height * width).permute(1, 2, 0, 3)
        o = torch.baddbmm(b.view(K, out, 1), w.view(K, out, c * 9), cols.reshape(K, c * 9, n * height * width))
        h = o.view(K, out, n, height, width).permute(2, 0, 1, 3, 4).reshape(n, K * out, height, width)
        h = F.max_pool2d(F.relu(h), (1, 2))
    return h.mean((2, 3))


torch.manual_seed(0)
weights = [torch.randn(K * o, i, 3, 3, device=device, requires_grad=True) for i, o in zip(CHANNELS, CHANNELS[1:])]
biases = [torch.randn(K * o, device=device, requires_grad=True) for o in CHANNELS[1:]]
x = torch.randn(B, K, 1, W, device=device)
ways = [
    ("grouped, channels-last", lambda: grouped(x, weights, biases, True), False),
    ("grouped, NCHW", lambda: grouped(x, weights, biases, False), False),
    ("grouped, channels-last, cudnn.benchmark", lambda: grouped(x, weights, biases, True), True),
    ("grouped, NCHW, cudnn.benchmark", lambda: grouped(x, weights, biases, False), True),
    ("im2col + bmm", lambda: im2col(x, weights, biases), False),
]


def outputs(way):
    for p in weights + biases:
        p.grad = None
    out = way()
    out.sum().backward()
    return [out.detach()] + [p.grad.clone() for p in weights + biases]


reference = outputs(ways[0][1])
print(f"{device}: {K} CNNs {CHANNELS[1:]}, batch {B}, 1x{W} input; one forward and backward pass, {rounds} rounds")
for name, way, benchmark in ways:
    if benchmark and device.type != "cuda":
        continue
    torch.backends.cudnn.benchmark = benchmark
    difference = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(outputs(way), reference))
    for _ in range(5):
        way().sum().backward()
    synchronize()
    started = time.perf_counter()
    for _ in range(rounds):
        way().sum().backward()
    synchronize()
    milliseconds = (time.perf_counter() - started) / rounds * 1e3
    print(f"  {name:42s} {milliseconds:8.3f} ms   (largest relative difference from the first: {difference:.1e})")
