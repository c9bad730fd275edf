"""The standard workload (see benchmarks/throughput.py) in JAX, written as a JAX user would: a
functional Conv4 with BatchNorm on batch statistics, the per-task computation ``vmap``-ed over the
meta-batch or unrolled in a loop (``--tasks``), the whole meta-step ``jit``-compiled, on every core
or one (``--threads``), Adam from optax. One JSON line, the same
fields as throughput.py.

Run (in the venv that benchmarks/peers/setup.sh jax makes):
    benchmarks/peers/.venv-jax/bin/python benchmarks/peers/jax_peer.py --algorithm maml
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from workload import add_workload_flags, tasks_per_second  # noqa: E402

jax = jnp = optax = None  # imported in main(), after --threads has set XLA's flags


def import_jax(threads: int):
    """JAX with XLA's CPU threads set first: every core (Eigen's pool) or one."""
    global jax, jnp, optax
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + (
        " --xla_cpu_multi_thread_eigen=true" if threads > 1 else
        " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")).strip()
    import jax as jax_module
    import jax.numpy as jnp_module
    import optax as optax_module
    jax, jnp, optax = jax_module, jnp_module, optax_module


def init_conv4(key, width, channels, ways):
    params, cin = [], channels
    for _ in range(4):
        key, k = jax.random.split(key)
        w = jax.random.normal(k, (3, 3, cin, width)) * jnp.sqrt(2.0 / (9 * cin))
        params.append({"w": w, "b": jnp.zeros(width), "gamma": jnp.ones(width),
                       "beta": jnp.zeros(width)})
        cin = width
    head = None
    if ways:
        key, k = jax.random.split(key)
        head = {"w": jax.random.normal(k, (width, ways)) * 0.01, "b": jnp.zeros(ways)}
    return {"blocks": params, "head": head}


def conv4(params, x):
    for p in params["blocks"]:
        x = jax.lax.conv_general_dilated(x, p["w"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]
        mean = x.mean((0, 1, 2))
        var = ((x - mean) ** 2).mean((0, 1, 2))
        x = (x - mean) / jnp.sqrt(var + 1e-3) * p["gamma"] + p["beta"]
        x = jax.nn.relu(x)
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = x.reshape(x.shape[0], -1)
    if params["head"] is not None:
        x = x @ params["head"]["w"] + params["head"]["b"]
    return x


def cross_entropy(logits, labels):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1).mean()


def over_tasks(fn, params, batch, mode):
    """``fn(params, *task)`` for every task of the meta-batch, stacked: ``vmap`` or a loop
    unrolled inside ``jit`` (XLA's CPU convolutions with per-task weights can be slower vmapped)."""
    if mode == "vmap":
        return jax.vmap(fn, in_axes=(None,) + (0,) * len(batch))(params, *batch)
    return jnp.stack([fn(params, *(t[i] for t in batch)) for i in range(batch[0].shape[0])])


def gradient_step(meta_loss, optimizer):
    """One jitted optimizer step on ``meta_loss(params, batch)``."""
    @jax.jit
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(meta_loss)(params, batch)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss
    return step


def make_step(algorithm, ways, inner_lr, inner_steps, optimizer, mode):
    def support_loss(params, x, y):
        return cross_entropy(conv4(params, x), y)

    def adapt(params, x, y, first_order):
        for _ in range(inner_steps):
            grads = jax.grad(support_loss)(params, x, y)
            if first_order:
                grads = jax.lax.stop_gradient(grads)
            params = jax.tree_util.tree_map(lambda p, g: p - inner_lr * g, params, grads)
        return params

    if algorithm in ("maml", "fomaml"):
        def task_loss(params, sx, sy, qx, qy):
            return support_loss(adapt(params, sx, sy, algorithm == "fomaml"), qx, qy)

        return gradient_step(lambda params, batch: over_tasks(task_loss, params, batch,
                                                              mode).mean(), optimizer)

    if algorithm == "protonet":
        def episode_loss(params, sx, sy, qx, qy):
            features = conv4(params, jnp.concatenate([sx, qx]))
            support, query = features[:sx.shape[0]], features[sx.shape[0]:]
            one_hot = jax.nn.one_hot(sy, ways)
            prototypes = (one_hot.T @ support) / one_hot.sum(0)[:, None]
            logits = -((query[:, None] - prototypes[None]) ** 2).sum(-1)
            return cross_entropy(logits, qy)

        return gradient_step(lambda params, batch: over_tasks(episode_loss, params, batch,
                                                              mode).mean(), optimizer)

    if algorithm == "reptile":
        @jax.jit
        def step(params, state, batch):
            sx, sy = batch[0], batch[1]
            if mode == "vmap":
                phis = jax.vmap(adapt, in_axes=(None, 0, 0, None))(params, sx, sy, True)
                mean_phi = jax.tree_util.tree_map(lambda p: p.mean(0), phis)
            else:
                phis = [adapt(params, sx[i], sy[i], True) for i in range(sx.shape[0])]
                mean_phi = jax.tree_util.tree_map(lambda *p: sum(p) / len(p), *phis)
            pseudo = jax.tree_util.tree_map(lambda t, m: t - m, params, mean_phi)
            updates, state = optimizer.update(pseudo, state, params)
            return optax.apply_updates(params, updates), state, jnp.zeros(())
        return step
    raise SystemExit(f"jax peer: no {algorithm}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", required=True)
    add_workload_flags(p)
    p.add_argument("--tasks", choices=("vmap", "loop"), default="loop",
                   help="how the meta-batch's tasks run (compare.py tries both, keeps the faster)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="XLA's CPU threads: 1, or every core (the default)")
    args = p.parse_args()
    import_jax(args.threads)
    rng = np.random.default_rng(0)
    n, s, q, b = args.ways, args.shots, args.queries, args.meta_batch
    shape = (args.image_size, args.image_size, 1)
    batches = [tuple(jnp.asarray(a) for a in (
        rng.random((b, n * s) + shape, np.float32), np.tile(np.arange(n).repeat(s), (b, 1)),
        rng.random((b, n * q) + shape, np.float32), np.tile(np.arange(n).repeat(q), (b, 1))))
        for _ in range(4)]
    head = None if args.algorithm == "protonet" else n
    params = init_conv4(jax.random.PRNGKey(0), args.width, 1, head)
    optimizer = (optax.sgd(1.0) if args.algorithm == "reptile" else optax.adam(1e-3))
    state = optimizer.init(params)
    inner_steps = 5 if args.algorithm == "reptile" else 1
    step = make_step(args.algorithm, n, 0.4, inner_steps, optimizer, args.tasks)
    began = time.time()
    params, state, loss = step(params, state, batches[0])
    loss.block_until_ready()
    first = time.time() - began
    trained = {"params": params, "state": state}

    def one_step(i):  # waits for the step, as the others do
        trained["params"], trained["state"], _ = step(trained["params"], trained["state"],
                                                     batches[i % 4])
        jax.tree_util.tree_leaves(trained["params"])[0].block_until_ready()

    rates = tasks_per_second(one_step, args)
    form = f"{args.tasks}, {'1 thread' if args.threads == 1 else 'every core'}"
    print(json.dumps({"peer": "jax", "algorithm": args.algorithm, "form": form,
                      "tasks_per_second": rates,
                      "first_step_seconds": round(first, 1),
                      "peak_rss_mb": round(resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "version": jax.__version__}))


if __name__ == "__main__":
    main()
