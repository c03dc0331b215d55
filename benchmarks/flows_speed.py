"""Speed of ConditionalRealNVP: context projected once per galaxy vs once per draw; and,
with ``--chain-step``, of one training step of the props chain.

Times ``log_prob`` and ``sample`` for S draws x G galaxies (default 1000 x 512) with a
256-d context, dim 4 and 12 couplings, in two ways that give the same numbers:

- once:     ``flow(context)`` with context (G, C); each coupling projects the context once
            and broadcasts it over the S draws (what galppl does);
- per draw: ``flow(context.expand(S, G, C))``; the projection runs for every draw, as with a
            hypernetwork fed ``cat(x1, context)`` (e.g. pyro's ConditionalDenseNN).

The chain step is one SVI step (forward, backward and Adam) of ``ChainModel`` on the props
chain (12 couplings) for a minibatch of 256 of 9,800 synthetic galaxies with 70 features, as
``galppl.fit`` trains it; reported as the median process CPU time over ``--chain-steps``
steps (CPU time rather than wall time: less disturbed by other processes on a shared machine).

Usage: .venv/bin/python benchmarks/flows_speed.py [--quick] [--chain-step] [--out runs/benchmarks/]
Prints the times (best of --repeats) and the per-draw / once ratio, and writes them to
``<out>/flows_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO

from galppl.flows import ConditionalRealNVP
from galppl.models.chain import ChainModel
from galppl.models.props import props_blocks


def best_time(fn, repeats: int) -> float:
    """Smallest wall time (s) of ``repeats`` calls: the least disturbed by other load."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def chain_step_ms(steps: int, seed: int, galaxies: int = 9800, features: int = 70, batch: int = 256) -> float:
    """Median CPU time (ms) of one SVI step of the props chain on a minibatch of ``batch``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(galaxies, features, generator=g)
    core = torch.stack([10 + 0.5 * x[:, 0], -0.3 + 0.4 * x[:, 1], 0.1 + 0.02 * x[:, 2]], -1)
    core = core + 0.2 * torch.randn(galaxies, 3, generator=g)
    bh = 8 + 1.5 * (core[:, :1] - 10) + 0.3 * torch.randn(galaxies, 1, generator=g)
    bh[torch.rand(galaxies, generator=g) < 0.14] = math.nan  # M_BH unmeasurable for ~14%
    detected = (torch.rand(galaxies, 1, generator=g) < torch.sigmoid(2 * x[:, :1])).float()
    oh = 8.9 + 0.3 * (core[:, :1] - 10) + 0.05 * torch.randn(galaxies, 1, generator=g)
    oh = torch.where(detected > 0, oh, torch.full_like(oh, math.nan))
    targets = {"core": core, "bh": bh, "oh_detected": detected, "oh": oh}
    chain = ChainModel(props_blocks(), features, seed=seed)
    chain.set_standardisation(x, targets)
    pyro.clear_param_store()
    svi = SVI(chain.model, chain.guide, pyro.optim.Adam({"lr": 1e-3}, clip_args={"clip_norm": 10.0}), Trace_ELBO())
    order = torch.randperm(galaxies, generator=g)
    warmup, times = 5, []
    for i in range(warmup + steps):
        rows = order[(i * batch) % (galaxies - batch):][:batch]
        start = time.process_time()
        svi.step(x[rows], n_total=galaxies, **{k: v[rows] for k, v in targets.items()})
        if i >= warmup:
            times.append(time.process_time() - start)
    pyro.clear_param_store()
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 draws x 64 galaxies, 1 repeat")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--galaxies", type=int, default=512)
    parser.add_argument("--context-dim", type=int, default=256)
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--couplings", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chain-step", action="store_true", help="also time the props chain's training step")
    parser.add_argument("--chain-steps", type=int, default=60, help="steps timed for --chain-step")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)
    if args.quick:
        args.draws, args.galaxies, args.repeats, args.chain_steps = 100, 64, 1, 5

    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    flow = ConditionalRealNVP(args.dim, args.context_dim, num_couplings=args.couplings, seed=args.seed)
    flow.eval()
    context = torch.randn(args.galaxies, args.context_dim, generator=generator)
    per_draw_context = context.expand(args.draws, -1, -1)
    x = torch.randn(args.draws, args.galaxies, args.dim, generator=generator)

    with torch.no_grad():
        lp_once = flow(context).log_prob(x)
        lp_per_draw = flow(per_draw_context).log_prob(x)
        max_difference = (lp_once - lp_per_draw).abs().max().item()
        timings = {
            "log_prob_once_s": best_time(lambda: flow(context).log_prob(x), args.repeats),
            "log_prob_per_draw_s": best_time(lambda: flow(per_draw_context).log_prob(x), args.repeats),
            "sample_once_s": best_time(lambda: flow(context).sample((args.draws,)), args.repeats),
            "sample_per_draw_s": best_time(lambda: flow(per_draw_context).sample(), args.repeats),
        }
    result = {
        "draws": args.draws,
        "galaxies": args.galaxies,
        "context_dim": args.context_dim,
        "dim": args.dim,
        "couplings": args.couplings,
        "hidden_dims": list(flow.hidden_dims),
        "threads": args.threads,
        "torch": torch.__version__,
        **timings,
        "log_prob_speedup": timings["log_prob_per_draw_s"] / timings["log_prob_once_s"],
        "sample_speedup": timings["sample_per_draw_s"] / timings["sample_once_s"],
        "max_log_prob_difference": max_difference,
    }

    print(
        f"ConditionalRealNVP dim={args.dim}, {args.couplings} couplings, hidden={flow.hidden_dims}, "
        f"context {args.context_dim}-d, {args.draws} draws x {args.galaxies} galaxies, "
        f"{args.threads} thread(s), best of {args.repeats}"
    )
    print(f"{'':10s} {'once (s)':>10s} {'per draw (s)':>13s} {'ratio':>7s}")
    for op in ("log_prob", "sample"):
        once, per_draw = timings[f"{op}_once_s"], timings[f"{op}_per_draw_s"]
        print(f"{op:10s} {once:10.3f} {per_draw:13.3f} {per_draw / once:7.2f}")
    print(f"max |log_prob once - per draw| = {max_difference:.2e}")
    if args.chain_step:
        result["chain_step_ms"] = chain_step_ms(args.chain_steps, args.seed)
        print(f"props chain SVI step, batch 256 of 9800 x 70 features: {result['chain_step_ms']:.1f} ms CPU (median)")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flows_speed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
