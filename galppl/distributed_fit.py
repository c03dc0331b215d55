"""Fit a chain on several processes or machines: ``torchrun ... -m galppl.distributed_fit CATALOG OUT``
(see :mod:`galppl.distributed`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import galppl
from galppl.config import FitConfig
from galppl.data.io import read_catalog
from galppl.distributed import is_main_process, process_group


def main(argv=None) -> int:
    """``torchrun ... -m galppl.distributed_fit CATALOG OUT [--model M] [--config TOML]``: fit a chain
    on a catalog file (any format :func:`galppl.data.io.read_catalog` reads) with every process,
    rank 0 saving the posterior to ``OUT``."""
    parser = argparse.ArgumentParser(prog="torchrun ... -m galppl.distributed_fit", description=main.__doc__)
    parser.add_argument("catalog", help="catalog file to fit on")
    parser.add_argument("out", help="directory the fitted posterior is saved to (by rank 0)")
    parser.add_argument("--model", default="props", help="props, lines or joint (default props)")
    parser.add_argument("--config", help="a TOML FitConfig (galppl.config.FitConfig.to_toml)")
    args = parser.parse_args(argv)
    config = FitConfig.from_toml(Path(args.config).read_text()) if args.config else None
    with process_group():
        posterior = galppl.fit(args.model, read_catalog(args.catalog), config=config,
                               progress=is_main_process())
        if is_main_process():
            posterior.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
