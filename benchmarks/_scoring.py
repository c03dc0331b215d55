"""What the benchmarks that set galppl beside point-estimate baselines share (photoz.py,
props_accuracy.py, table1.py): the real DR9 file, the baselines, intervals from draws or
quantile regressions, and their scores."""

from __future__ import annotations

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import r2_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from galppl.data import load_galaxyzoo
from galppl.data.paths import sdss_data_dir
from galppl.diagnostics.photoz import photoz_metrics
from galppl.models.chain import Block

# Central credible levels scored.
LEVELS = (0.68, 0.95)
# A two-variable chain for what the DR9 file labels (log M*, z): the props core as far as it has targets.
MSTAR_Z_CHAIN = [Block("core", ("log_mstar", "z"), "realnvp", flow_options={"num_couplings": 6})]


def real_catalog():
    """The DR9 catalog with its one non-positive redshift set missing (outside z's support), or None."""
    folder = sdss_data_dir()
    if folder is None or not (folder / "dr9_galaxyzoo_5k.csv").exists():
        return None
    data = load_galaxyzoo(folder / "dr9_galaxyzoo_5k.csv")
    bad = ~(data["z"].values > 0) & np.isfinite(data["z"].values)
    print(f"DR9: {data.sizes['galaxy']} galaxies; {int(bad.sum())} with z <= 0 set missing (outside z's support)")
    data["z"] = data["z"].where(~bad)
    return data


def fitting_ids(split: dict) -> np.ndarray:
    """The galaxy ids a galppl fit learnt from (``train``, ``val`` and ``calibration``): what a
    baseline trains on, so that every row sees the same galaxies apart from the test ones."""
    return np.concatenate([split[part] for part in ("train", "val", "calibration") if part in split])


def baselines(seed: int) -> dict:
    """The paper's point-estimate baselines, name -> a factory of an unfitted sklearn regressor."""
    return {
        # Inputs and the target standardised, as the paper's network would have them.
        "MLP": lambda: TransformedTargetRegressor(
            make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(256, 256), early_stopping=True,
                                                         max_iter=300, random_state=seed)),
            transformer=StandardScaler()),
        "kNN (k=10)": lambda: make_pipeline(StandardScaler(), KNeighborsRegressor(10)),
        "grad. boosting": lambda: HistGradientBoostingRegressor(random_state=seed),
    }


def interval_scores(truth: dict[str, np.ndarray], median: dict, lower: dict | None = None,
                    upper: dict | None = None, bins: np.ndarray | None = None) -> dict[str, float]:
    """R^2 of the medians per variable, the photo-z statistics where ``z`` is scored (NMAD of
    dz/(1+z), outlier fractions above 0.05 and 0.15, bias) and, given ``lower``/``upper``
    (variable -> level -> bound), the coverage of the central intervals per level and variable
    (``cov68 z``), and with ``bins`` (galaxy,) labels, the largest |coverage - level| over the
    bins (``dev68 z``). Galaxies with a NaN truth or median are left out."""
    out = {}
    for name, true in truth.items():
        keep = np.isfinite(true) & np.isfinite(median[name])
        out[f"R2 {name}"] = r2_score(true[keep], median[name][keep])
        for level in LEVELS if lower is not None else ():
            inside = (lower[name][level] <= true) & (true <= upper[name][level])
            out[f"cov{int(level * 100)} {name}"] = float(inside[keep].mean())
            if bins is not None:
                per_bin = np.array([inside[keep & (bins == b)].mean() for b in np.unique(bins)])
                out[f"dev{int(level * 100)} {name}"] = float(np.abs(per_bin - level).max())
    if "z" in truth:
        z = photoz_metrics(truth["z"], median["z"])
        out.update({"NMAD": z["nmad"], "out>0.05": z["outliers_0.05"], "out>0.15": z["outliers_0.15"],
                    "bias": z["bias"]})
    return out


def draw_intervals(draws: dict[str, np.ndarray], variables) -> tuple[dict, dict, dict]:
    """(median, lower, upper) per variable from draws (sample, galaxy), the bounds per level of
    :data:`LEVELS`; NaN for galaxies without draws."""
    median, lower, upper = {}, {}, {}
    for v in variables:
        finite = np.isfinite(draws[v]).all(0)
        q = np.full((1 + 2 * len(LEVELS), draws[v].shape[1]), np.nan)
        probabilities = [0.5] + [(1 - lv) / 2 for lv in LEVELS] + [(1 + lv) / 2 for lv in LEVELS]
        q[:, finite] = np.quantile(draws[v][:, finite], probabilities, axis=0)
        median[v] = q[0]
        lower[v] = {lv: q[1 + k] for k, lv in enumerate(LEVELS)}
        upper[v] = {lv: q[1 + len(LEVELS) + k] for k, lv in enumerate(LEVELS)}
    return median, lower, upper


def boosting_intervals(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int):
    """(median, lower, upper) of one variable by histogram gradient boosting: squared loss for
    the point, quantile loss at each level's ends; trained where y and x are finite, NaN for
    test rows with incomplete inputs (as galppl: no guess)."""
    keep = np.isfinite(y_train) & np.isfinite(x_train).all(1)

    def fitted(**kw):
        model = HistGradientBoostingRegressor(random_state=seed, **kw).fit(x_train[keep], y_train[keep])
        return np.where(np.isfinite(x_test).all(1), model.predict(x_test), np.nan)

    lower = {lv: fitted(loss="quantile", quantile=(1 - lv) / 2) for lv in LEVELS}
    upper = {lv: fitted(loss="quantile", quantile=(1 + lv) / 2) for lv in LEVELS}
    return fitted(), lower, upper
