"""Throughput of the image VAE: SVI training and encoding, in images per second.

For stamp sides 64 and 160 px (the paper's size) and the default architecture
(VAEConfig: 3 convolutions 32/64/128, hidden 256, latent 32), times

- training: one Pyro SVI step (Trace_ELBO, Adam) on a minibatch of ``--train-batch``
  images, i.e. encoder + decoder forward and backward, as ``VAEConfig(trainer="pyro")``
  trains (``benchmarks/train_speed.py`` compares it with the default plain-torch path);
- encoding: the encoder's forward pass without gradients on ``--encode-batch`` images,
  as ``FittedVAE.encode`` runs it;

on this CPU (``--threads`` intra-op threads) and on CUDA when available. Peak memory:
``torch.cuda.max_memory_allocated`` per phase on a GPU; on the CPU the peak resident set
size (``resource.getrusage``) of a fresh Python process that runs only that phase (size,
training or encoding), so phases do not inherit each other's high-water mark. The
process's resident size just before the phase (interpreter, torch, model, input batch)
is reported beside it as ``*_base_mib``.

Usage: .venv/bin/python benchmarks/vae_throughput.py [--quick] [--out runs/benchmarks/]
Writes ``<out>/vae_throughput.json``. Images are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

from galppl.guides.encoder import Encoder
from galppl.models.vae import VAEConfig, VAEModel


def best_rate(fn, images: int, repeats: int) -> float:
    """Images per second of the fastest of ``repeats`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return images / min(times)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure(size: int, device: str, train_batch: int, encode_batch: int, repeats: int, phases=("train", "encode")) -> dict:
    config = VAEConfig(image_size=size, device=device)
    torch.manual_seed(0)
    encoder, vae = Encoder(size).to(device), VAEModel(config).to(device)
    params = sum(p.numel() for m in (encoder, vae) for p in m.parameters())
    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    row = {"image_size": size, "device": device, "parameters": params}
    if "train" in phases:
        with pyro.get_param_store().scope():
            svi = SVI(vae.model, encoder.guide, pyro.optim.Adam({"lr": 1e-4}), Trace_ELBO())
            batch = torch.randn(train_batch, 3, size, size, device=device)
            row["train_base_mib"] = torch.cuda.memory_allocated() / 2**20 if cuda else peak_rss_mib()
            svi.step(batch, n_total=10 * train_batch)  # warm-up: optimiser state, kernels
            if cuda:
                torch.cuda.reset_peak_memory_stats()

            def train_step():
                svi.step(batch, n_total=10 * train_batch)
                sync()

            row["train_images_per_s"] = best_rate(train_step, train_batch, repeats)
            row["train_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib()

    if "encode" in phases:
        encoder.eval()
        images = torch.randn(encode_batch, 3, size, size, device=device)
        row["encode_base_mib"] = torch.cuda.memory_allocated() / 2**20 if cuda else peak_rss_mib()
        with torch.no_grad():
            encoder(images[:2])
            if cuda:
                torch.cuda.reset_peak_memory_stats()

            def encode():
                encoder(images)
                sync()

            row["encode_images_per_s"] = best_rate(encode, encode_batch, repeats)
        row["encode_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib()
    return row


def measure_isolated(size: int, device: str, args) -> dict:
    """``measure`` with each phase in a fresh interpreter, so CPU peak RSS is per phase."""
    row = {}
    for phase in ("train", "encode"):
        command = [
            sys.executable, __file__, "--child", phase, "--sizes", str(size), "--child-device", device,
            "--train-batch", str(args.train_batch), "--encode-batch", str(args.encode_batch),
            "--threads", str(args.threads), "--repeats", str(args.repeats),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"the {phase} measurement at {size} px failed:\n{done.stderr[-3000:]}")
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small batches, 1 repeat")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 160])
    parser.add_argument("--train-batch", type=int, default=128, help="SVI minibatch (VAEConfig default 128)")
    parser.add_argument("--encode-batch", type=int, default=512, help="FittedVAE.encode default 512")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on the CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument(
        "--same-process", action="store_true", help="measure every phase in this process (CPU peak RSS cumulative)"
    )
    parser.add_argument("--child", choices=["train", "encode"], help=argparse.SUPPRESS)
    parser.add_argument("--child-device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.train_batch, args.encode_batch, args.repeats = 16, 64, 1

    torch.set_num_threads(args.threads)
    if args.child:  # one phase in a fresh process: print its row as JSON, nothing else
        row = measure(args.sizes[0], args.child_device, args.train_batch, args.encode_batch, args.repeats, (args.child,))
        print(json.dumps(row))
        return row
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    print(
        f"{'device':>6} {'px':>4} {'params':>10} {'train img/s':>12} {'encode img/s':>13} "
        f"{'peak MiB (train/enc)':>22} {'before MiB (train/enc)':>23}"
    )
    for device in devices:
        for size in args.sizes:
            if args.same_process:
                row = measure(size, device, args.train_batch, args.encode_batch, args.repeats)
            else:
                row = measure_isolated(size, device, args)
            rows.append(row)
            print(
                f"{device:>6} {size:>4} {row['parameters']:>10,} {row['train_images_per_s']:>12.1f} "
                f"{row['encode_images_per_s']:>13.1f} {row['train_peak_mib']:>10.0f} / {row['encode_peak_mib']:<10.0f} "
                f"{row['train_base_mib']:>11.0f} / {row['encode_base_mib']:<10.0f}",
                flush=True,
            )
    by = {(r["device"], r["image_size"]): r for r in rows}
    for device in devices:
        if (device, 64) in by and (device, 160) in by:
            slow = by[(device, 64)]["train_images_per_s"] / by[(device, 160)]["train_images_per_s"]
            print(f"{device}: training at 160 px is {slow:.1f}x slower per image than at 64 px (6.25x the pixels)")
    result = {
        "rows": rows,
        "threads": args.threads,
        "train_batch": args.train_batch,
        "encode_batch": args.encode_batch,
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "note": (
            "CPU peak memory: the process's cumulative peak RSS"
            if args.same_process
            else "CPU peak memory: peak RSS of a fresh process running only that phase; *_base_mib: RSS before it"
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vae_throughput.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
