"""How close is the mock SDSS sky to the real one? Compares ``galppl.simulate`` with the real
SDSS extracts in ../shared/data/sdss (see PROVENANCE.md there):

(a) classifier two-sample test on (u-g, g-r, r-i, i-z, r, z, log M*) against
    dr9_galaxyzoo_5k (held-out ROC AUC of a gradient-boosted classifier, 5-fold; 0.5 means
    indistinguishable; goal <= 0.65), with per-feature AUCs saying what gives the mock away;
(b) the SFR-M* plane against gswlc2_subset_1k: main-sequence ridge and quenched fraction
    in mass bins;
(c) M_BH-sigma against bh_msigma_compilation: slope, intercept, scatter;
(d) n(z) and r-magnitude distributions: quantiles and KS statistics;
(e) predictability: how well gradient boosting reads log SFR, log M* and 12+log(O/H) from the
    mock's ugriz photometry (5-fold RMSE, without and with the redshift as an input, and against
    the hidden truth instead of the catalog's measured value), against
    what published models reach on real SDSS galaxies with MPA-JHU labels (:data:`REAL_RMSE`):
    a mock whose properties are much easier or harder to read than the real sky's trains
    models that transfer badly (goal: within 25%);
(f) the colours at fixed redshift, mock against dr9_galaxyzoo_5k itself: how well gradient
    boosting reads z from ugriz (5-fold NMAD of dz/(1+z), outlier fraction), and the robust
    spread of g-r, u-g and r-i of red-sequence (u-r > 2.4) and blue-cloud (u-r < 2.0)
    galaxies in 0.02-wide redshift bins, and the robust correlation of neighbouring colours
    (g-r with r-i, r-i with i-z) in 0.04-wide bins: a mock whose colours are tighter than the sky's gives
    photo-z posteriors too narrow for real galaxies; the photo-z rms in bins of u-r says in
    which galaxies;
(g) inclination reddening: the slope of g-r against log10(a/b) of discs at fixed log M* and z
    (least squares in three redshift bins), mock discs (star-forming, B/T < 0.4, the disc's
    axis ratio) against Galaxy Zoo spirals (the r-band exponential fit's axis ratio): dust
    in inclined discs reddens them (Maller et al. 2009; Masters et al. 2010);
plus the O/H of metallicity-detected galaxies against the Wu & Boada 2019 labels
(MPA-JHU oh_p50: mean ~8.91, sd ~0.20).

Run: .venv/bin/python benchmarks/simulator_fidelity.py [--quick] [--out DIR] [--seed S]
Prints every number and a summary table; writes figures to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

FEATURES = ("u-g", "g-r", "r-i", "i-z", "r", "z", "log_mstar")
# RMSE (dex) of photometric estimates on real SDSS galaxies with MPA-JHU labels: Zeraatgari et
# al. 2024, A&A 688, A33 (SDSS + AllWISE photometry, CatBoost; optical photometry alone would do
# somewhat worse for SFR).
REAL_RMSE = {"log_sfr": 0.336, "log_mstar": 0.206, "oh": 0.097}
PREDICTABILITY_TOLERANCE = 0.25
MASS_BINS = np.arange(9.0, 11.75, 0.5)


def _real_catalogs():
    from galppl.data.loaders import load_bh_compilation, load_galaxyzoo, load_gswlc
    from galppl.data.paths import sdss_data_dir

    folder = sdss_data_dir()
    if folder is None:
        sys.exit("../shared/data/sdss is absent (set GALPPL_SDSS_DATA): nothing real to compare with")
    gz = load_galaxyzoo(folder / "dr9_galaxyzoo_5k.csv")
    gz = gz.isel(galaxy=np.flatnonzero(gz["quality"].values == 0))
    gsw = load_gswlc(folder / "gswlc2_subset_1k.csv")
    bh = load_bh_compilation(folder / "bh_msigma_compilation.csv")
    labels = folder / "wu_boada_cutouts" / "labels.csv"
    oh = None
    if labels.exists():
        import pandas as pd

        oh = pd.read_csv(labels)["oh_p50"].to_numpy(dtype=float)
    return gz, gsw, bh, oh


def features(mag, z, log_mstar) -> np.ndarray:
    """(N, 7) array of u-g, g-r, r-i, i-z, r, z, log M* from (N, 5) ugriz magnitudes."""
    return np.column_stack([mag[:, 0] - mag[:, 1], mag[:, 1] - mag[:, 2], mag[:, 2] - mag[:, 3],
                            mag[:, 3] - mag[:, 4], mag[:, 2], z, log_mstar])  # fmt: skip


def classifier_auc(x_mock, x_real, seed=0, folds=5) -> float:
    """Held-out ROC AUC (k-fold) of a HistGradientBoostingClassifier separating mock from real."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.vstack([x_mock, x_real])
    y = np.r_[np.zeros(len(x_mock)), np.ones(len(x_real))]
    clf = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv, scoring="roc_auc").mean())


def matched_to_nz(z_mock, z_real, rng, width=0.01) -> np.ndarray:
    """Boolean mask thinning ``z_mock`` to the n(z) of ``z_real`` (bins of ``width``): each
    galaxy kept with probability proportional to n_real / n_mock in its bin (no galaxy twice,
    so a classifier cannot recognise repeats)."""
    edges = np.arange(0.0, max(z_mock.max(), z_real.max()) + width, width)
    n_mock = np.histogram(z_mock, edges)[0] / len(z_mock)
    n_real = np.histogram(z_real, edges)[0] / len(z_real)
    ratio = np.divide(n_real, n_mock, out=np.zeros_like(n_real), where=n_mock > 0)
    keep = ratio[np.clip(np.digitize(z_mock, edges) - 1, 0, len(ratio) - 1)]
    return rng.random(len(z_mock)) < keep / keep.max()


def cross_validated_predictions(x, y, seed=0, folds=5) -> np.ndarray:
    """HistGradientBoostingRegressor's k-fold out-of-fold predictions of y from x."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    return cross_val_predict(HistGradientBoostingRegressor(random_state=seed), x, y,
                             cv=KFold(folds, shuffle=True, random_state=seed))


def cross_validated_rmse(x, y, seed=0, folds=5) -> float:
    """RMSE of :func:`cross_validated_predictions`."""
    return float(np.sqrt(np.mean((cross_validated_predictions(x, y, seed, folds) - y) ** 2)))


def photometry_features(mag) -> np.ndarray:
    """(N, 9): the five magnitudes and the four adjacent colours."""
    return np.column_stack([mag, mag[:, :-1] - mag[:, 1:]])


# u-r bins of the photo-z rms, blue cloud to red sequence: (label, low, high)
UR_BINS = (("u-r < 1.6", -np.inf, 1.6), ("u-r 1.6-2.2", 1.6, 2.2), ("u-r 2.2-2.6", 2.2, 2.6), ("u-r > 2.6", 2.6, np.inf))


def photoz_scores(mag, z, seed) -> tuple[dict[str, float], dict[str, float]]:
    """Gradient-boosted photo-z from ugriz (5-fold): its ``photoz_metrics`` and its rms in
    each bin of ``UR_BINS``."""
    from galppl.diagnostics import photoz_metrics

    z_est = cross_validated_predictions(photometry_features(mag), z, seed)
    u_r, residual = mag[:, 0] - mag[:, 2], z_est - z
    rms = {label: float(np.sqrt(np.mean(residual[(u_r >= lo) & (u_r < hi)] ** 2))) for label, lo, hi in UR_BINS}
    return photoz_metrics(z, z_est), rms


INCLINATION_Z_BINS = ((0.02, 0.06), (0.06, 0.10), (0.10, 0.14))


def inclination_reddening(g_r, axis_ratio, log_mstar, z) -> list[float]:
    """Slope of g-r per dex of log10(a/b), with log M* and z as covariates, in each redshift
    bin of ``INCLINATION_Z_BINS`` (pass the discs only)."""
    log_ab = np.log10(1.0 / np.clip(axis_ratio, 0.05, 1.0))
    slopes = []
    for lo, hi in INCLINATION_Z_BINS:
        k = (z >= lo) & (z < hi) & np.isfinite(g_r) & np.isfinite(log_ab) & np.isfinite(log_mstar)
        design = np.column_stack([np.ones(k.sum()), log_ab[k], log_mstar[k] - 10.5, z[k]])
        slopes.append(float(np.linalg.lstsq(design, g_r[k], rcond=None)[0][1]))
    return slopes


def robust_sd(x) -> float:
    """1.4826 x the median absolute deviation (the sd of a Gaussian core, blind to outliers)."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


COLOUR_SPREAD_BINS = (0.04, 0.08, 0.12)  # lower edges of 0.02-wide redshift bins


def colour_spreads(mag, z) -> dict[str, float]:
    """Robust sd of g-r, u-g, r-i (red sequence, u-r > 2.4) and g-r (blue cloud, u-r < 2.0) in
    each 0.02-wide redshift bin from ``COLOUR_SPREAD_BINS``, keyed 'red g-r 0.04' etc."""
    u_r = mag[:, 0] - mag[:, 2]
    colours = {"g-r": mag[:, 1] - mag[:, 2], "u-g": mag[:, 0] - mag[:, 1], "r-i": mag[:, 2] - mag[:, 3]}
    out = {}
    for lo in COLOUR_SPREAD_BINS:
        in_bin = (z > lo) & (z < lo + 0.02)
        for name, values in colours.items():
            out[f"red {name} {lo:.2f}"] = robust_sd(values[in_bin & (u_r > 2.4)])
        out[f"blue g-r {lo:.2f}"] = robust_sd(colours["g-r"][in_bin & (u_r < 2.0)])
    return out


def robust_correlation(a, b) -> float:
    """Correlation of a and b blind to outliers (Gnanadesikan & Kettenring 1972): with each
    standardised by its robust sd, (s^2 - d^2) / (s^2 + d^2) for s, d the robust sds of the
    sum and the difference."""
    a, b = a / robust_sd(a), b / robust_sd(b)
    s, d = robust_sd(a + b) ** 2, robust_sd(a - b) ** 2
    return float((s - d) / (s + d))


COLOUR_CORRELATION_BINS = ((0.02, 0.06), (0.06, 0.10), (0.10, 0.14))


def colour_correlations(mag, z) -> dict[str, float]:
    """Robust correlation of neighbouring colours (g-r with r-i, r-i with i-z) among the red
    (u-r > 2.4) and the blue (u-r < 2.0) galaxies of each redshift bin of
    ``COLOUR_CORRELATION_BINS``, keyed 'red r-i,i-z 0.06'. A spectrum that varies smoothly from
    galaxy to galaxy (age, metallicity, dust) moves neighbouring colours together; noise that is
    independent per band moves them apart (a shared band enters one colour with + and the
    other with -)."""
    u_r = mag[:, 0] - mag[:, 2]
    g_r, r_i, i_z = (mag[:, k] - mag[:, k + 1] for k in (1, 2, 3))
    out = {}
    for lo, hi in COLOUR_CORRELATION_BINS:
        in_bin = (z >= lo) & (z < hi)
        for kind, members in (("red", in_bin & (u_r > 2.4)), ("blue", in_bin & (u_r < 2.0))):
            out[f"{kind} g-r,r-i {lo:.2f}"] = robust_correlation(g_r[members], r_i[members])
            out[f"{kind} r-i,i-z {lo:.2f}"] = robust_correlation(r_i[members], i_z[members])
    return out


def ridge_and_quenched(log_m, log_sfr, bins=MASS_BINS, cut=-11.0):
    """Per mass bin: median log SFR of star-forming galaxies (log sSFR > cut) and quenched fraction."""
    ridge, fq, count = [], [], []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (log_m >= lo) & (log_m < hi) & np.isfinite(log_sfr)
        ssfr = log_sfr[m] - log_m[m]
        sf = ssfr > cut
        ridge.append(np.median(log_sfr[m][sf]) if sf.sum() > 5 else np.nan)
        fq.append(1 - sf.mean() if m.sum() > 5 else np.nan)
        count.append(int(m.sum()))
    return np.array(ridge), np.array(fq), np.array(count)


def msigma_fit(log_sigma, log_mbh):
    """OLS fit log M_BH = a + b log10(sigma / 200 km/s); returns (intercept, slope, rms scatter)."""
    x = log_sigma - np.log10(200.0)
    ok = np.isfinite(x) & np.isfinite(log_mbh)
    b, a = np.polyfit(x[ok], log_mbh[ok], 1)
    return float(a), float(b), float(np.std(log_mbh[ok] - a - b * x[ok]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer mock galaxies (2,000)")
    parser.add_argument("--out", default="runs/benchmarks/fidelity", help="folder for figures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)

    from scipy.stats import ks_2samp

    from galppl.data import simulate

    gz, gsw, bh, oh_real = _real_catalogs()
    n_real = gz.sizes["galaxy"]
    n_mock = 2000 if args.quick else n_real
    t0 = time.perf_counter()
    mock = simulate(n_mock, seed=args.seed, image_size=None, cache=False)
    print(f"simulated {n_mock} mock galaxies in {time.perf_counter() - t0:.1f} s; real: {n_real} (Galaxy Zoo, unflagged)")
    results: dict[str, float] = {}

    # (a) classifier two-sample test. The Galaxy Zoo magnitudes stop sharply at r = 17.77 (only
    # 1% beyond), which only extinction-corrected magnitudes do under the MGS cut: compare with
    # the mock's extinction-corrected magnitudes (and report the raw ones too).
    real_mag = gz["mag"].values
    x_real = features(real_mag, gz["z"].values, gz["log_mstar"].values)
    mag_dered = mock["mag"].values - mock["extinction"].values
    x_mock = features(mag_dered, mock["z"].values, mock["log_mstar"].values)
    x_mock_raw = features(mock["mag"].values, mock["z"].values, mock["log_mstar"].values)
    auc = classifier_auc(x_mock, x_real, seed=args.seed)
    auc_raw = classifier_auc(x_mock_raw, x_real, seed=args.seed)
    results["auc_all_features"] = auc
    results["auc_all_features_raw_mags"] = auc_raw
    print(f"\n(a) classifier two-sample test (5-fold ROC AUC; 0.5 = indistinguishable, goal <= 0.65)")
    print(f"    all 7 features, extinction-corrected mock mags: AUC = {auc:.3f}")
    print(f"    all 7 features, raw mock mags:                  AUC = {auc_raw:.3f}")
    print("    per feature (one-feature classifier) | mock median | real median")
    for j, name in enumerate(FEATURES):
        a = classifier_auc(x_mock[:, [j]], x_real[:, [j]], seed=args.seed)
        results[f"auc_{name}"] = a
        print(f"      {name:10s} AUC = {a:.3f} | {np.median(x_mock[:, j]):7.3f} | {np.median(x_real[:, j]):7.3f}")
    without = {}
    for j, name in enumerate(FEATURES):
        keep = [k for k in range(len(FEATURES)) if k != j]
        without[name] = classifier_auc(x_mock[:, keep], x_real[:, keep], seed=args.seed)
    print("    AUC without each feature: " + ", ".join(f"{k} {v:.3f}" for k, v in without.items()))
    # The file is one equatorial strip (dec -1.3 to 1.3, ra 145-203), across the Sloan Great Wall
    # at z ~ 0.08 (Gott et al. 2005): its n(z) has that strip's structures, which no mock of
    # another patch (or with its own random large-scale structure) shares. How much of the AUC is
    # the strip's n(z): a larger mock, thinned to the file's n(z) in 0.01 bins, against the file.
    extra = simulate(3 * n_real, seed=args.seed + 1, image_size=None, cache=False)
    matched = matched_to_nz(extra["z"].values, gz["z"].values, np.random.default_rng(args.seed))
    extra_mag = extra["mag"].values - extra["extinction"].values
    x_matched = features(extra_mag, extra["z"].values, extra["log_mstar"].values)[matched]
    results["auc_nz_matched"] = classifier_auc(x_matched, x_real, seed=args.seed)
    results["auc_nz_matched_z"] = classifier_auc(x_matched[:, [5]], x_real[:, [5]], seed=args.seed)
    print(f"    mock thinned to the file's n(z) ({matched.sum()} galaxies): AUC = {results['auc_nz_matched']:.3f}"
          f" (z alone {results['auc_nz_matched_z']:.3f})")

    # (b) SFR-M* plane
    ridge_m, fq_m, n_m = ridge_and_quenched(mock["log_mstar"].values, mock["log_sfr"].values)
    ridge_r, fq_r, n_r = ridge_and_quenched(gsw["log_mstar"].values, gsw["log_sfr"].values)
    print("\n(b) SFR-M*: main-sequence ridge (median log SFR, log sSFR > -11) and quenched fraction")
    print("    mass bin     | ridge mock | ridge GSWLC | f_q mock | f_q GSWLC | N mock | N GSWLC")
    for i, (lo, hi) in enumerate(zip(MASS_BINS[:-1], MASS_BINS[1:])):
        print(f"    {lo:4.1f}-{hi:4.1f}    | {ridge_m[i]:10.2f} | {ridge_r[i]:11.2f} | {fq_m[i]:8.2f} | {fq_r[i]:9.2f} |"
              f" {n_m[i]:6d} | {n_r[i]:7d}")  # fmt: skip
    results["ridge_rms_diff"] = float(np.sqrt(np.nanmean((ridge_m - ridge_r) ** 2)))
    results["fq_rms_diff"] = float(np.sqrt(np.nanmean((fq_m - fq_r) ** 2)))

    # (c) M_BH-sigma
    ok = (bh["mbh_upper_limit"].values == 0) if "mbh_upper_limit" in bh else np.ones(bh.sizes["galaxy"], bool)
    a_r, b_r, s_r = msigma_fit(np.log10(bh["sigma"].values[ok]), bh["log_mbh"].values[ok])
    a_m, b_m, s_m = msigma_fit(np.log10(mock["sigma"].values), mock["log_mbh"].values)
    a_t, b_t, s_t = msigma_fit(np.log10(mock["true_sigma"].values), mock["true_log_mbh"].values)
    print("\n(c) M_BH-sigma fit log M_BH = a + b log(sigma/200)")
    print(f"    real compilation ({ok.sum()} measurements): a = {a_r:.2f}, b = {b_r:.2f}, scatter = {s_r:.2f} dex")
    print(f"    mock catalog (log_mbh from measured sigma): a = {a_m:.2f}, b = {b_m:.2f}, scatter = {s_m:.2f} dex")
    print(f"    mock truth (true_log_mbh vs true sigma):    a = {a_t:.2f}, b = {b_t:.2f}, scatter = {s_t:.2f} dex")
    results.update(msigma_real_slope=b_r, msigma_real_scatter=s_r, msigma_true_slope=b_t, msigma_true_scatter=s_t)
    miss = np.isnan(mock["sigma"].values).mean()
    print(f"    mock sigma missing (outside 70-420 km/s): {miss:.1%}")

    # (d) n(z) and r
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    print("\n(d) distributions: quantiles 5/25/50/75/95% and two-sample KS statistic")
    for name, vm, vr in (
        ("z", mock["z"].values, gz["z"].values),
        ("r (dered.)", mag_dered[:, 2], real_mag[:, 2]),
        ("log M*", mock["log_mstar"].values, gz["log_mstar"].values),
    ):
        ks = ks_2samp(vm, vr).statistic
        results[f"ks_{name.split()[0]}"] = float(ks)
        print(f"    {name:10s} mock {np.round(np.quantile(vm, q), 3)}  real {np.round(np.quantile(vr, q), 3)}  KS = {ks:.3f}")
    hist, edges = np.histogram(mock["z"].values, bins=np.arange(0.0, 0.31, 0.02))
    results["nz_peak"] = float(edges[np.argmax(hist)] + 0.01)
    print(f"    mock n(z) peak (0.02 bins): z = {results['nz_peak']:.2f}")

    # (e) predictability
    print("\n(e) predictability: gradient boosting on the mock's photometry, 5-fold RMSE (dex) | published real"
          f" (Zeraatgari et al. 2024) | mock / real (goal: within {PREDICTABILITY_TOLERANCE:.0%})")
    photometry = photometry_features(mag_dered)
    with_z = np.column_stack([photometry, mock["z"].values])
    for name, real_rmse in REAL_RMSE.items():
        y = mock[name].values
        rows = np.isfinite(y) & np.isfinite(photometry).all(1)
        rmse, rmse_z = (cross_validated_rmse(x[rows], y[rows], args.seed) for x in (photometry, with_z))
        ratio = rmse / real_rmse
        met = abs(ratio - 1) <= PREDICTABILITY_TOLERANCE
        # The same photometry read against the hidden truth: what the catalog's measurement
        # error adds (its kind matters: random here, a function of the spectrum in MPA-JHU's
        # D4000-based SFRs of passive galaxies, Brinchmann et al. 2004).
        rmse_true = cross_validated_rmse(photometry[rows], mock[f"true_{name}"].values[rows], args.seed)
        results[f"rmse_{name}"], results[f"rmse_{name}_with_z"], results[f"rmse_true_{name}"] = rmse, rmse_z, rmse_true
        print(f"    {name:10s} {rmse:.3f} (with z {rmse_z:.3f}; against the truth {rmse_true:.3f}) | {real_rmse:.3f} |"
              f" {ratio:.2f} [{'met' if met else 'NOT met'}] ({rows.sum()} galaxies)")

    # (f) colours at fixed redshift
    print("\n(f) colours at fixed redshift, mock | real (dr9_galaxyzoo_5k)")
    photoz_m, rms_m = photoz_scores(mag_dered, mock["z"].values, args.seed)
    photoz_r, rms_r = photoz_scores(real_mag, gz["z"].values, args.seed)
    (nmad_m, out_m), (nmad_r, out_r) = ((p["nmad"], p["outliers_0.05"]) for p in (photoz_m, photoz_r))
    results.update(photoz_nmad=nmad_m, photoz_nmad_real=nmad_r, photoz_outliers=out_m, photoz_outliers_real=out_r)
    print(f"    photo-z from ugriz (gradient boosting, 5-fold): NMAD {nmad_m:.4f} | {nmad_r:.4f};"
          f" |dz|/(1+z) > 0.05: {out_m:.2%} | {out_r:.2%}")
    print("    its rms by u-r: " + "; ".join(f"{k} {rms_m[k]:.4f} | {rms_r[k]:.4f}" for k in rms_m))
    results.update({f"photoz rms {k}": v for k, v in rms_m.items()})
    spread_m, spread_r = colour_spreads(mag_dered, mock["z"].values), colour_spreads(real_mag, gz["z"].values)
    print("    robust sd of colours in 0.02-wide z bins (red: u-r > 2.4, blue: u-r < 2.0):")
    for key in spread_m:
        results[f"sd {key}"] = spread_m[key]
        print(f"      {key:16s} {spread_m[key]:.3f} | {spread_r[key]:.3f} (ratio {spread_m[key] / spread_r[key]:.2f})")
    corr_m, corr_r = colour_correlations(mag_dered, mock["z"].values), colour_correlations(real_mag, gz["z"].values)
    bins = ", ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in COLOUR_CORRELATION_BINS)
    print(f"    robust correlation of neighbouring colours (red: u-r > 2.4, blue: u-r < 2.0; z bins {bins}):")
    for key in corr_m:
        results[f"corr {key}"] = corr_m[key]
        print(f"      {key:20s} {corr_m[key]:+.2f} | {corr_r[key]:+.2f}")

    # (g) inclination reddening of discs
    discs = (mock["quenched"].values == 0) & (mock["bulge_to_total"].values < 0.4)
    spirals = gz["gz_spiral"].values == 1
    slope_m = inclination_reddening(*(v[discs] for v in (mag_dered[:, 1] - mag_dered[:, 2], mock["axis_ratio"].values,
                                                          mock["log_mstar"].values, mock["z"].values)))
    slope_r = inclination_reddening(*(v[spirals] for v in (real_mag[:, 1] - real_mag[:, 2], gz["axis_ratio_exp_r"].values,
                                                            gz["log_mstar"].values, gz["z"].values)))
    print(f"\n(g) g-r per dex of log10(a/b) at fixed log M* and z, mock discs ({discs.sum()}) | Galaxy Zoo spirals "
          f"({spirals.sum()}):")
    for (lo, hi), a, b in zip(INCLINATION_Z_BINS, slope_m, slope_r, strict=True):
        print(f"    z {lo:.2f}-{hi:.2f}: {a:+.2f} | {b:+.2f}")
        results[f"inclination g-r z{lo:.2f}"] = a

    # O/H of metallicity-detected galaxies
    det = mock["oh_detected"].values == 1
    oh_m = mock["oh"].values[det]
    results.update(oh_mean=float(oh_m.mean()), oh_sd=float(oh_m.std()), oh_detected_fraction=float(det.mean()))
    real_txt = f"real (Wu & Boada 2019, {len(oh_real)}): mean {oh_real.mean():.3f}, sd {oh_real.std():.3f}" if oh_real is not None else ""
    print(f"\nO/H of detected galaxies: mock mean {oh_m.mean():.3f}, sd {oh_m.std():.3f} ({det.mean():.1%} detected); {real_txt}")

    if not args.no_plots:
        _plots(Path(args.out), x_mock, x_real, mock, gsw, bh, ok, mag_dered, real_mag, gz)
        print(f"\nfigures written to {args.out}/")

    print("\nsummary")
    for k, v in results.items():
        print(f"    {k:32s} {v:8.3f}")
    return results


def _plots(out: Path, x_mock, x_real, mock, gsw, bh, ok, mag_dered, real_mag, gz):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    pairs = [(1, 0), (1, 2), (2, 3), (5, 1), (5, 0), (6, 1), (4, 6), (5, 6)]
    for ax, (i, j) in zip(axes.ravel(), pairs):
        ax.scatter(x_real[:, i], x_real[:, j], s=2, alpha=0.3, label="SDSS DR9 (Galaxy Zoo)")
        ax.scatter(x_mock[:, i], x_mock[:, j], s=2, alpha=0.3, label="mock")
        ax.set_xlabel(FEATURES[i])
        ax.set_ylabel(FEATURES[j])
        lo = np.percentile(np.r_[x_real[:, i], x_mock[:, i]], [0.5, 99.5])
        hi = np.percentile(np.r_[x_real[:, j], x_mock[:, j]], [0.5, 99.5])
        ax.set_xlim(*lo)
        ax.set_ylim(*hi)
    axes[0, 0].legend(markerscale=5)
    fig.tight_layout()
    fig.savefig(out / "colours.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    axes[0].scatter(gsw["log_mstar"], gsw["log_sfr"], s=3, alpha=0.5, label="GSWLC-2")
    axes[0].scatter(mock["log_mstar"], mock["log_sfr"], s=2, alpha=0.2, label="mock")
    axes[0].set(xlabel="log M*", ylabel="log SFR", xlim=(8, 12), ylim=(-4, 2))
    axes[0].legend(markerscale=5)
    sig = bh["sigma"].values[ok]
    axes[1].scatter(np.log10(sig), bh["log_mbh"].values[ok], s=6, label="compilation")
    axes[1].scatter(np.log10(mock["true_sigma"]), mock["true_log_mbh"], s=2, alpha=0.2, label="mock truth")
    axes[1].set(xlabel="log sigma [km/s]", ylabel="log M_BH")
    axes[1].legend(markerscale=3)
    bins = np.arange(0, 0.31, 0.01)
    axes[2].hist(gz["z"].values, bins, density=True, histtype="step", label="real")
    axes[2].hist(mock["z"].values, bins, density=True, histtype="step", label="mock")
    axes[2].set(xlabel="z")
    axes[2].legend()
    bins = np.arange(13, 18.1, 0.1)
    axes[3].hist(real_mag[:, 2], bins, density=True, histtype="step", label="real")
    axes[3].hist(mag_dered[:, 2], bins, density=True, histtype="step", label="mock")
    axes[3].set(xlabel="r (mag)")
    fig.tight_layout()
    fig.savefig(out / "physics.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
