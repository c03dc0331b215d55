"""How well does galppl predict emission lines? One run, one mock test set, side by side.

galppl's lines model (a conditional RealNVP over the four fluxes in signed log1p space) against
baselines trained on the same features and the same training galaxies (the features the
galppl model reads, ``GalaxyPosterior.features``: photometry by default, VAE latents +
photometry with ``--inputs image+photometry``):

- an MLP regressor (the paper's baseline), kNN (k = 10) and gradient boosting (sklearn
  HistGradientBoosting), the baselines of ``props_accuracy.py``,
  regressing the four fluxes in signed log1p space;
- for the BPT classes, the same three as classifiers of the measured class (with
  "undefined" as a fourth class), so that their probabilities can be compared with galppl's.

Reported, on the test galaxies:

1. R^2 per line of the point estimate (galppl: posterior median) against the measured
   fluxes, in signed log1p space and linear, and in signed log1p against the simulator's
   noiseless fluxes;
2. coverage of galppl's central 68% and 95% intervals of each line (vs measured fluxes);
3. BPT classification accuracy of the most probable class (galppl: argmax of
   p_bpt_star_forming / composite / agn; regressors, and "galppl median": the class of
   the predicted fluxes) against the class of the noiseless fluxes, and against the class
   of the measured fluxes (galaxies where that is defined). galppl's probabilities are
   those of the *measured* class (its draws are of measured, noisy fluxes), so their
   argmax is the one to compare against the measured class; a point estimate of the
   fluxes is shrunk towards the mean and sits closer to the noiseless class;
4. calibration of the class probabilities against the measured class (4 outcomes incl.
   undefined, which is what galppl's probabilities predict): multi-class Brier score and a
   reliability table;
5. R^2 of the fibre H-alpha SFR (dust-corrected, Kennicutt & Evans 2012; catalog z) against
   the one from the noiseless fluxes.

Run: .venv/bin/python benchmarks/lines_accuracy.py [--quick] [--n N] [--out DIR] [--seed S]
(the default run took ~5 min on one CPU thread: fit ~3 min, 3000 x 1000 draws ~1.5 min;
--quick ~20 s)
Prints every number and a table; writes figures to --out (default runs/benchmarks/lines).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr

LINES = ("flux_halpha", "flux_hbeta", "flux_nii", "flux_oiii")


def signed_log1p(x):
    return np.sign(x) * np.log1p(np.abs(x))


def signed_expm1(y):
    return np.sign(y) * np.expm1(np.abs(y))


def r2(pred, true) -> float:
    ok = np.isfinite(pred) & np.isfinite(true)
    pred, true = pred[ok], true[ok]
    return float(1 - np.sum((pred - true) ** 2) / np.sum((true - true.mean()) ** 2))


def baselines(x_train, y_train, seed):
    """The regressors, fitted on standardised features and standardised signed-log1p targets."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.neural_network import MLPRegressor

    return {
        "MLP": MLPRegressor(hidden_layer_sizes=(256, 256), learning_rate_init=1e-3, early_stopping=True, max_iter=300,
                            random_state=seed).fit(x_train, y_train),
        "kNN (k=10)": KNeighborsRegressor(10).fit(x_train, y_train),
        "grad. boosting": MultiOutputRegressor(HistGradientBoostingRegressor(random_state=seed)).fit(x_train, y_train),
    }


def classifiers(x_train, c_train, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    return {
        "MLP": MLPClassifier(hidden_layer_sizes=(256, 256), early_stopping=True, max_iter=300,
                             random_state=seed).fit(x_train, c_train),
        "kNN (k=10)": KNeighborsClassifier(10).fit(x_train, c_train),
        "grad. boosting": HistGradientBoostingClassifier(random_state=seed).fit(x_train, c_train),
    }


def class_probabilities(model, x) -> np.ndarray:
    """(galaxy, 4) probabilities in BPT_OUTCOMES order; the classifier's labels are 0, 1, 2, 3 (= undefined)."""
    p = np.zeros((len(x), 4))
    p[:, model.classes_] = model.predict_proba(x)
    return p


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (3000 galaxies, short training)")
    parser.add_argument("--n", type=int, default=None, help="mock galaxies (default 20000, quick 3000)")
    parser.add_argument("--inputs", default="photometry", help="photometry (default) or image+photometry")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=None, help="posterior draws (default 1000, quick 200)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="galppl training budget (default 900, quick 120)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared, loaded machine 2 threads ran 7x slower)")
    parser.add_argument("--out", default="runs/benchmarks/lines")
    args = parser.parse_args(argv)

    import torch

    import galppl
    from galppl import diagnostics as gd
    from galppl.data import simulate
    from galppl.diagnostics import bpt_probabilities, class_reliability
    from galppl.models.derived import derived_quantities
    from galppl.physics import BPT_OUTCOMES, a_halpha_from_balmer, bpt_class_of_fluxes, log_sfr_from_halpha

    torch.set_num_threads(args.threads)
    n = args.n or (3000 if args.quick else 20000)
    num_samples = args.num_samples or (200 if args.quick else 1000)
    max_seconds = args.max_seconds or (120.0 if args.quick else 900.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    image_size = None if args.inputs == "photometry" else 64
    catalog = simulate(n, seed=args.seed, image_size=image_size, progress=True)
    print(f"mock catalog: {n} galaxies, inputs {args.inputs!r} ({time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    model = galppl.fit("lines", catalog, inputs=args.inputs, seed=args.seed, max_seconds=max_seconds,
                       max_epochs=40 if args.quick else 300, patience=5 if args.quick else 20,
                       vae_max_seconds=max_seconds, progress=False)
    fit_seconds = time.perf_counter() - t0
    history = model.history
    print(f"galppl lines fit: {fit_seconds:.0f} s, {history['epochs_run']} epochs, best {history['best_epoch']}, "
          f"stopped by {history['stopped_because']}")

    def rows(name):
        return catalog.sel(galaxy=model.split[name])

    train, test = rows("train"), rows("test")
    features_train = model.features(train).values
    features_test = model.features(test).values
    ok_train = np.isfinite(features_train).all(1)
    ok_test = np.isfinite(features_test).all(1)
    test = test.isel(galaxy=np.flatnonzero(ok_test))
    features_test = features_test[ok_test]
    measured = np.stack([test[name].values for name in LINES], axis=1)
    noiseless = np.stack([test[f"true_{name}"].values for name in LINES], axis=1)

    t0 = time.perf_counter()
    idata = model.predict(test, num_samples=num_samples, seed=args.seed)
    predict_seconds = time.perf_counter() - t0
    posterior = idata.posterior
    draws = np.stack([posterior[name].isel(chain=0).values for name in LINES], axis=-1)  # (draw, galaxy, line)
    print(f"galppl predict: {len(test.galaxy)} galaxies x {num_samples} draws in {predict_seconds:.1f} s")

    # ---- point estimates, signed log1p space
    from sklearn.preprocessing import StandardScaler

    x_scaler = StandardScaler().fit(features_train[ok_train])
    x_train, x_test = x_scaler.transform(features_train[ok_train]), x_scaler.transform(features_test)
    y_train_raw = signed_log1p(np.stack([train[name].values for name in LINES], axis=1)[ok_train])
    y_scaler = StandardScaler().fit(y_train_raw)
    t0 = time.perf_counter()
    regressors = baselines(x_train, y_scaler.transform(y_train_raw), args.seed)
    print(f"baseline regressors fitted in {time.perf_counter() - t0:.0f} s")
    predictions = {"galppl": np.median(signed_log1p(draws), axis=0)}
    for name, regressor in regressors.items():
        predictions[name] = y_scaler.inverse_transform(regressor.predict(x_test))

    print("\n## R^2 per line (point estimate vs measured flux; galppl: posterior median)")
    header = f"{'method':<16} {'line':<12} {'R2 log1p':>9} {'R2 linear':>10} {'R2 log1p vs noiseless':>22}"
    print(header)
    r2_table = {}
    for method, pred in predictions.items():
        for k, line in enumerate(LINES):
            values = (r2(pred[:, k], signed_log1p(measured[:, k])), r2(signed_expm1(pred[:, k]), measured[:, k]),
                      r2(pred[:, k], signed_log1p(noiseless[:, k])))
            r2_table[method, line] = values
            print(f"{method:<16} {line:<12} {values[0]:>9.3f} {values[1]:>10.3f} {values[2]:>22.3f}")

    print("\n## galppl coverage of central intervals (vs measured flux)")
    coverage = {}
    for k, line in enumerate(LINES):
        row = []
        for level in (0.68, 0.95):
            low, high = np.quantile(draws[..., k], [(1 - level) / 2, (1 + level) / 2], axis=0)
            row.append(float(np.mean((measured[:, k] >= low) & (measured[:, k] <= high))))
        coverage[line] = row
        print(f"{line:<12} 68%: {row[0]:.3f}   95%: {row[1]:.3f}")

    # ---- BPT classes
    true_class = bpt_class_of_fluxes(*noiseless.T)
    measured_class = bpt_class_of_fluxes(*measured.T)
    print(f"\ntest galaxies: {len(true_class)}; noiseless classes (SF/comp/AGN/undef) "
          f"{[int((true_class == c).sum()) for c in (0, 1, 2, -1)]}; measured "
          f"{[int((measured_class == c).sum()) for c in (0, 1, 2, -1)]}")
    p_galppl = bpt_probabilities(posterior).values  # (galaxy, 4)
    c_train = bpt_class_of_fluxes(*np.stack([train[name].values for name in LINES])[:, ok_train])
    c_train = np.where(c_train < 0, 3, c_train)
    t0 = time.perf_counter()
    class_models = classifiers(x_train, c_train, args.seed)
    print(f"baseline classifiers fitted in {time.perf_counter() - t0:.0f} s")
    probabilities = {"galppl": p_galppl}
    probabilities.update({f"{k} clf": class_probabilities(m, x_test) for k, m in class_models.items()})

    def accuracy(predicted, reference):
        defined = reference >= 0
        return float(np.mean(predicted[defined] == reference[defined]))

    print("\n## BPT classification (most probable of SF/composite/AGN)")
    print(f"{'method':<18} {'acc vs noiseless':>17} {'acc vs measured':>16} {'Brier (4-class, measured)':>26}")
    bpt_table = {}
    for method, p in probabilities.items():
        label = np.argmax(p[:, :3], axis=1)
        brier = class_reliability(p, measured_class)["brier"].item()
        bpt_table[method] = (accuracy(label, true_class), accuracy(label, measured_class), brier)
        print(f"{method:<18} {bpt_table[method][0]:>17.3f} {bpt_table[method][1]:>16.3f} {brier:>26.3f}")
    # point estimates: the class of the predicted fluxes (galppl: of its posterior medians)
    for method in predictions:
        key = "galppl median" if method == "galppl" else f"{method} reg"
        label = bpt_class_of_fluxes(*signed_expm1(predictions[method]).T)  # -1 (undefined) counts as wrong
        bpt_table[key] = (accuracy(label, true_class), accuracy(label, measured_class), float("nan"))
        print(f"{key:<18} {bpt_table[key][0]:>17.3f} {bpt_table[key][1]:>16.3f} {'-':>26}")

    tables = {m: class_reliability(probabilities[m], measured_class) for m in ("galppl", "grad. boosting clf")}
    print("\n## reliability (one-vs-rest, pooled over the 4 outcomes, vs measured class)")
    print(f"{'bin':<10}" + "".join(f"{m + ' pred':>24}{m + ' obs':>23}{'n':>7}" for m in tables))
    for b in range(10):
        cells = "".join(f"{t['mean_predicted'].values[b]:>24.3f}{t['observed_frequency'].values[b]:>23.3f}"
                        f"{int(t['bin_count'].values[b]):>7d}" for t in tables.values())
        print(f"{b / 10:.1f}-{(b + 1) / 10:.1f}   " + cells)

    # ---- fibre SFR from H-alpha
    derived = derived_quantities(posterior, z=test["z"])
    sfr_median = derived["log_sfr_halpha"].isel(chain=0).median("draw", skipna=True).values
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((noiseless[:, 0] > 0) & (noiseless[:, 1] > 0), noiseless[:, 0] / noiseless[:, 1], np.nan)
    sfr_true = log_sfr_from_halpha(noiseless[:, 0], a_halpha_from_balmer(ratio), test["true_z"].values)
    sfr_r2 = r2(sfr_median, sfr_true)
    defined_sfr = float(np.mean(np.isfinite(derived["log_sfr_halpha"].values)))
    print(f"\nfibre log SFR(H-alpha): R^2 of the posterior median vs the noiseless one {sfr_r2:.3f} "
          f"(share of draws with a defined SFR {defined_sfr:.3f})")

    # ---- figures
    truth = test[[f"true_{name}" for name in LINES]].rename({f"true_{name}": name for name in LINES})
    gd.plot_bpt(idata, truth).savefig(out / "bpt_noiseless_vs_posterior.png", dpi=120)
    gd.plot_bpt(idata).savefig(out / "bpt_measured_vs_posterior.png", dpi=120)
    gd.plot_lines_pred_vs_true(idata).savefig(out / "lines_pred_vs_measured.png", dpi=120)
    gd.plot_lines_pred_vs_true(idata, truth).savefig(out / "lines_pred_vs_noiseless.png", dpi=120)
    # a well-detected star-forming galaxy (90th percentile of H-beta among them; the very
    # brightest is an outlier of the training set), and one of median H-alpha
    star_forming = np.flatnonzero(measured_class == 0)
    ranked = star_forming[np.argsort(measured[star_forming, 1])]
    bright = int(test["galaxy"].values[ranked[int(0.9 * (len(ranked) - 1))]])
    typical = int(test["galaxy"].values[np.argsort(measured[:, 0])[len(measured) // 2]])
    for galaxy in (bright, typical):
        gd.plot_lines_corner(idata, galaxy).savefig(out / f"lines_corner_{galaxy}.png", dpi=120)
    gd.plot_reliability(tables).savefig(out / "bpt_reliability.png", dpi=120)

    # ---- summary
    print("\n## summary (R^2 in signed log1p vs measured; H-alpha, H-beta, [NII], [OIII])")
    for method in predictions:
        print(f"{method:<16} " + "  ".join(f"{r2_table[method, line][0]:.3f}" for line in LINES))
    print(f"galppl fit {fit_seconds:.0f} s; predict {len(test.galaxy) * num_samples / predict_seconds:,.0f} draws/s; "
          f"figures in {out}/")
    xr.Dataset(
        {"r2_log": (("method", "line"), [[r2_table[m, l][0] for l in LINES] for m in predictions]),
         "r2_linear": (("method", "line"), [[r2_table[m, l][1] for l in LINES] for m in predictions]),
         "coverage": (("line", "level"), [coverage[l] for l in LINES])},
        coords={"method": list(predictions), "line": list(LINES), "level": [0.68, 0.95]},
        attrs={"n_galaxies": n, "n_test": len(test.galaxy), "inputs": args.inputs, "fit_seconds": fit_seconds,
               "bpt_outcomes": list(BPT_OUTCOMES)},
    ).to_netcdf(out / "lines_accuracy.nc")
    return {"r2": r2_table, "coverage": coverage, "bpt": bpt_table, "sfr_r2": sfr_r2}


if __name__ == "__main__":
    main()
