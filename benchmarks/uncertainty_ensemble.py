"""Aleatoric vs epistemic uncertainty of galppl props (the paper's Table 2), from an ensemble.

    python benchmarks/uncertainty_ensemble.py [--quick] [--k 5] [--n 20000] [--inputs image+photometry]

``galppl.fit("props", catalog, ensemble=K)``: one split of the mock catalog (its test share,
15%, held out of every member), one VAE fitted and frozen, then K chains with seeds 0..K-1
(their own initial weights and minibatch order); the ensemble predicts the test galaxies
(``--num-samples`` draws per member, pooled). Per parameter,
``EnsemblePosterior.uncertainty_split`` gives sigma_ale (mean within-member spread) and
sigma_epi (spread of the member means); the ensemble's calibration is reported too, and one
member's. Epistemic here is the chain's: the VAE is shared, so its own variance is not counted.

Prints the table and writes it (and the full report with the ensemble section) to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import arviz as az
import numpy as np

import galppl
from galppl import diagnostics
from galppl.data import simulate
from galppl.ensemble import member_posteriors
from galppl.features import uses_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2000 galaxies, 3 members, short fits")
    parser.add_argument("--k", type=int, default=5, help="ensemble members")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--inputs", default="image+photometry")
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--chain-minutes", type=float, default=4.0, help="time budget per member")
    parser.add_argument("--vae-minutes", type=float, default=4.0, help="time budget of the shared VAE")
    parser.add_argument("--out", default="runs/benchmarks/uncertainty")
    args = parser.parse_args()
    n, k = (2000, 3) if args.quick else (args.n, args.k)
    options = (dict(max_epochs=10, vae_max_epochs=2) if args.quick
               else dict(max_seconds=60 * args.chain_minutes, vae_max_seconds=60 * args.vae_minutes))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    image_size = 64 if uses_images(args.inputs) else None
    catalog = simulate(n, seed=0, image_size=image_size)
    ensemble = galppl.fit("props", catalog, inputs=args.inputs, ensemble=k, progress=False, **options)
    for member in ensemble.members:
        history = member.history
        print(f"member (seed {member.config.seed}): fitted in {history['fit_seconds']:.0f} s "
              f"({history['epochs_run']} epochs, stopped: {history['stopped_because']})", flush=True)
    seconds = [member.history["fit_seconds"] for member in ensemble.members]
    test = catalog.sel(galaxy=ensemble.split["test"])

    # The ensemble as one posterior: num_samples draws per member, pooled along draw.
    pooled = ensemble.predict(test, num_samples=k * args.num_samples)
    params = [v for v in ("log_mstar", "log_sfr", "z", "log_mbh", "oh") if v in pooled.posterior]
    table = ensemble.uncertainty_split(pooled, var_names=params)
    members = member_posteriors(pooled)
    cov = diagnostics.coverage(pooled, var_names=params, levels=[0.68, 0.95])
    single = diagnostics.coverage(members[0], var_names=params, levels=[0.68, 0.95])
    acc = diagnostics.accuracy(pooled, var_names=params)

    lines = [f"ensemble of {k} props fits ({args.inputs}), {test.sizes['galaxy']} held-out mock galaxies, "
             f"{args.num_samples} draws per member; {np.mean(seconds):.0f} s per member (the shared VAE included)",
             f"{'parameter':<11}{'sigma_ale':>10}{'sigma_epi':>10}{'frac_epi':>9}{'R^2':>7}"
             f"{'cov68 1 fit':>12}{'cov68 ens':>10}{'cov95 1 fit':>12}{'cov95 ens':>10}"]
    for p in params:
        t, c, s = table.sel(parameter=p), cov.sel(parameter=p), single.sel(parameter=p)
        lines.append(f"{p:<11}{float(t.sigma_ale):>10.3f}{float(t.sigma_epi):>10.3f}{float(t.frac_epi):>9.3f}"
                     f"{float(acc['r2'].sel(parameter=p)):>7.3f}"
                     f"{float(s.coverage.sel(level=0.68)):>12.3f}{float(c.coverage.sel(level=0.68)):>10.3f}"
                     f"{float(s.coverage.sel(level=0.95)):>12.3f}{float(c.coverage.sel(level=0.95)):>10.3f}")
    text = "\n".join(lines)
    print(text)
    (out / "uncertainty.txt").write_text(text + "\n")
    table.to_netcdf(out / "uncertainty.nc")
    diagnostics.report(pooled, out / "report", ensemble=members, title=f"galppl props: ensemble of {k}")
    az.to_netcdf(pooled, str(out / "ensemble_posterior.nc"))


if __name__ == "__main__":
    main()
