"""Speed of ConditionalRealNVP: context projected once per galaxy vs once per draw.

Times ``log_prob`` and ``sample`` for S draws x G galaxies (default 1000 x 512) with a
256-d context, dim 4 and 12 couplings, in two ways that give the same numbers:

- once:     ``flow(context)`` with context (G, C); each coupling projects the context once
            and broadcasts it over the S draws (what galppl does);
- per draw: ``flow(context.expand(S, G, C))``; the projection runs for every draw, as with a
            hypernetwork fed ``cat(x1, context)`` (e.g. pyro's ConditionalDenseNN).

Usage: .venv/bin/python benchmarks/flows_speed.py [--quick] [--out runs/benchmarks/]
Prints the times (best of --repeats) and the per-draw / once ratio, and writes them to
``<out>/flows_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from galppl.flows import ConditionalRealNVP


def best_time(fn, repeats: int) -> float:
    """Smallest wall time (s) of ``repeats`` calls: the least disturbed by other load."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)
    if args.quick:
        args.draws, args.galaxies, args.repeats = 100, 64, 1

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

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flows_speed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
