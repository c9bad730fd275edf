"""The standard workload (see benchmarks/throughput.py) in PyTorch, written as a PyTorch expert
would: an ``nn.Module`` Conv4 with BatchNorm on batch statistics, ``torch.func.functional_call``
for the adapted weights, Adam, and each of the forms an expert would try for the meta-batch
(benchmarks/compare.py runs every form and keeps the fastest):

  --tasks loop      tasks one after another, autograd (``create_graph=True`` for second order)
  --tasks threads   the same per-task autograd in ``cores / --threads`` Python threads side by side
                    (PyTorch releases the GIL inside operations; each thread sums its tasks'
                    gradients, the main thread adds them up)
  --tasks vmap      ``torch.func.vmap`` of ``torch.func.grad`` over the meta-batch
  --threads N       intra-op threads (``torch.set_num_threads``)
  --compile         the per-task gradient written with ``torch.func.grad`` and ``torch.compile``d
                    (loop or threads)

BatchNorm's running statistics are not tracked (``torch.func.replace_all_batch_norm_modules_``,
which vmap needs; one update fewer than tfmeta does). One JSON line, the same fields as
throughput.py, with the form.

Run (in the venv that benchmarks/peers/setup.sh torch makes):
    benchmarks/peers/.venv-torch/bin/python benchmarks/peers/torch_peer.py --algorithm maml
    ... --algorithm protonet --tasks threads --threads 1
"""

import argparse
import copy
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from workload import add_workload_flags, tasks_per_second  # noqa: E402

INNER_LR = 0.4


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


def task_functions(model, algorithm, ways, shots):
    """Two implementations of one task's outer gradient contribution ``(params, sx, sy, qx, qy)
    -> {name: tensor}`` (MAML, first-order MAML, ProtoNet: the gradient of the task's query loss;
    Reptile: theta - phi after 5 SGD steps): ``autograd`` in PyTorch's classic style, ``func``
    with ``torch.func.grad`` (what vmap and torch.compile take)."""

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    def protonet_loss(params, sx, sy, qx, qy):
        features = functional_call(model, params, (torch.cat([sx, qx]),))
        support, query = features[:sx.shape[0]], features[sx.shape[0]:]
        prototypes = support.reshape(ways, shots, -1).mean(1)  # sy is class-major: 0..0 1..1
        return F.cross_entropy(-((query[:, None] - prototypes[None]) ** 2).sum(-1), qy)

    def adapt_autograd(params, x, y, steps, second_order):
        for _ in range(steps):
            grads = torch.autograd.grad(loss(params, x, y), list(params.values()),
                                        create_graph=second_order)
            params = {k: v - INNER_LR * g for (k, v), g in zip(params.items(), grads)}
        return params

    def autograd_task(params, sx, sy, qx, qy):
        if algorithm == "reptile":
            start = {k: v.detach().requires_grad_() for k, v in params.items()}
            phi = adapt_autograd(start, sx, sy, 5, False)
            return {k: params[k].detach() - phi[k].detach() for k in params}
        if algorithm == "protonet":
            task_loss = protonet_loss(params, sx, sy, qx, qy)
        else:
            phi = adapt_autograd(params, sx, sy, 1, algorithm == "maml")
            task_loss = loss(phi, qx, qy)
        return dict(zip(params, torch.autograd.grad(task_loss, list(params.values()))))

    def adapt_func(params, x, y, steps, first_order):
        for _ in range(steps):
            grads = torch.func.grad(loss)(params, x, y)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            params = {k: params[k] - INNER_LR * grads[k] for k in params}
        return params

    def func_task_loss(params, sx, sy, qx, qy):
        if algorithm == "protonet":
            return protonet_loss(params, sx, sy, qx, qy)
        return loss(adapt_func(params, sx, sy, 1, algorithm == "fomaml"), qx, qy)

    def func_task(params, sx, sy, qx, qy):
        if algorithm == "reptile":
            phi = adapt_func(params, sx, sy, 5, True)
            return {k: params[k] - phi[k] for k in params}
        return torch.func.grad(func_task_loss)(params, sx, sy, qx, qy)

    return autograd_task, func_task, func_task_loss


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", required=True, choices=("maml", "fomaml", "protonet", "reptile"))
    add_workload_flags(p)
    p.add_argument("--tasks", choices=("loop", "threads", "vmap"), default="loop")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads")
    p.add_argument("--compile", action="store_true", help="torch.compile the per-task gradient")
    args = p.parse_args()
    if args.compile and args.tasks == "vmap":
        raise SystemExit("torch peer: --compile takes --tasks loop or threads")
    torch.set_num_threads(args.threads)
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
    torch.func.replace_all_batch_norm_modules_(model)
    if args.algorithm == "reptile":
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    runners = max(1, os.cpu_count() // args.threads) if args.tasks == "threads" else 1
    pool = ThreadPoolExecutor(runners) if runners > 1 else None
    # functional_call swaps a module's parameters while it runs: each runner thread gets its own
    # copy of the module (the parameters themselves come from the caller, shared)
    per_task = []
    for runner in range(runners):
        autograd_task, func_task, func_task_loss = task_functions(
            model if runner == 0 else copy.deepcopy(model), args.algorithm, n, s)
        per_task.append(torch.compile(func_task) if args.compile else autograd_task)

    def chunk_sum(params, batch, runner, tasks):
        total = None
        for i in tasks:
            g = per_task[runner](params, *(t[i] for t in batch))
            total = g if total is None else {k: total[k] + g[k] for k in total}
        return total

    def meta_gradient(params, batch):
        if args.tasks == "vmap":
            if args.algorithm == "reptile":
                deltas = torch.func.vmap(func_task, in_dims=(None, 0, 0, 0, 0))(params, *batch)
                return {k: v.mean(0) for k, v in deltas.items()}
            return torch.func.grad(lambda p: torch.func.vmap(
                func_task_loss, in_dims=(None, 0, 0, 0, 0))(p, *batch).mean())(params)
        if pool is None:
            total = chunk_sum(params, batch, 0, range(b))
        else:
            parts = list(pool.map(lambda r: chunk_sum(params, batch, r, range(r, b, runners)),
                                  range(runners)))
            total = {k: sum(part[k] for part in parts) for k in parts[0]}
        return {k: v / b for k, v in total.items()}

    def step(batch):
        params = dict(model.named_parameters())
        if args.tasks == "vmap" or args.compile:
            params = {k: v.detach() for k, v in params.items()}
        grads = meta_gradient(params, batch)
        for name, v in model.named_parameters():
            v.grad = grads[name].detach()
        optimizer.step()

    began = time.time()
    step(batches[0])
    first = time.time() - began
    rates = tasks_per_second(lambda i: step(batches[i % 4]), args)
    form = f"{args.tasks}, {args.threads} intra-op thread{'s' * (args.threads > 1)}"
    if runners > 1:
        form = f"{runners} {form}"
    print(json.dumps({"peer": "torch", "algorithm": args.algorithm, "tasks_per_second": rates,
                      "form": form + (", torch.compile" if args.compile else ""),
                      "first_step_seconds": round(first, 1),
                      "peak_rss_mb": round(resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "version": torch.__version__}))


if __name__ == "__main__":
    main()
