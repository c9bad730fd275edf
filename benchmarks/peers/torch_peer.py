"""The standard workload (see benchmarks/throughput.py) in PyTorch, written as a PyTorch user would:
an ``nn.Module`` Conv4 with BatchNorm (batch statistics), ``torch.func.functional_call`` for the
adapted weights, autograd with ``create_graph=True`` for second-order MAML, a loop over the
meta-batch's tasks, Adam. One JSON line, the same fields as throughput.py.

Run (in the venv that benchmarks/peers/setup.sh torch makes):
    benchmarks/peers/.venv-torch/bin/python benchmarks/peers/torch_peer.py --algorithm maml
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from workload import add_workload_flags, tasks_per_second  # noqa: E402


def conv4(width, ways):
    layers, cin = [], 1
    for _ in range(4):
        layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width, eps=1e-3),
                   nn.ReLU(), nn.MaxPool2d(2)]
        cin = width
    layers.append(nn.Flatten())
    if ways:
        layers.append(nn.Linear(width, ways))
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", required=True)
    add_workload_flags(p)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, s, q, b = args.ways, args.shots, args.queries, args.meta_batch
    shape = (1, args.image_size, args.image_size)  # channels first, PyTorch's layout
    batches = [tuple(torch.as_tensor(a) for a in (
        rng.random((b, n * s) + shape, np.float32), np.tile(np.arange(n).repeat(s), (b, 1)),
        rng.random((b, n * q) + shape, np.float32), np.tile(np.arange(n).repeat(q), (b, 1))))
        for _ in range(4)]
    model = conv4(args.width, None if args.algorithm == "protonet" else n)
    model.train()  # BatchNorm on batch statistics, as in the MAML code
    loss_fn = nn.CrossEntropyLoss()
    if args.algorithm == "reptile":
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    names = [name for name, _ in model.named_parameters()]

    def adapt(params, x, y, steps, second_order):
        for _ in range(steps):
            loss = loss_fn(functional_call(model, params, (x,)), y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=second_order)
            params = {k: v - 0.4 * g for (k, v), g in zip(params.items(), grads)}
        return params

    def step(batch):
        sx, sy, qx, qy = batch
        optimizer.zero_grad()
        theta = dict(model.named_parameters())
        if args.algorithm in ("maml", "fomaml"):
            for i in range(b):
                phi = adapt(theta, sx[i], sy[i], 1, args.algorithm == "maml")
                (loss_fn(functional_call(model, phi, (qx[i],)), qy[i]) / b).backward()
        elif args.algorithm == "protonet":
            for i in range(b):
                features = model(torch.cat([sx[i], qx[i]]))
                support, query = features[:n * s], features[n * s:]
                prototypes = support.reshape(n, s, -1).mean(1)
                logits = -torch.cdist(query, prototypes) ** 2
                (loss_fn(logits, qy[i]) / b).backward()
        elif args.algorithm == "reptile":
            detached = {k: v.detach() for k, v in theta.items()}
            mean_phi = {k: torch.zeros_like(v) for k, v in detached.items()}
            for i in range(b):
                phi = adapt({k: v.requires_grad_() for k, v in
                             ((k, v.clone()) for k, v in detached.items())}, sx[i], sy[i], 5,
                            False)
                for k in names:
                    mean_phi[k] += phi[k].detach() / b
            for k, v in theta.items():
                v.grad = detached[k] - mean_phi[k]
        else:
            raise SystemExit(f"torch peer: no {args.algorithm}")
        optimizer.step()

    began = time.time()
    step(batches[0])
    first = time.time() - began
    rates = tasks_per_second(lambda i: step(batches[i % 4]), args)
    print(json.dumps({"peer": "torch", "algorithm": args.algorithm, "tasks_per_second": rates,
                      "first_step_seconds": round(first, 1),
                      "peak_rss_mb": round(resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "version": torch.__version__}))


if __name__ == "__main__":
    main()
