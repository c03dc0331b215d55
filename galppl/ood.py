"""How far a galaxy's inputs lie from the training galaxies: the out-of-distribution score.

A chain fitted on one sky extrapolates, silently and wildly, on inputs unlike any it was
trained on: a DR9 galaxy whose i magnitude is glitched by 8 mag got a posterior median
log M* of -318. :class:`InputDensity` says where that happens. It is a Gaussian mixture
with full covariances fitted on the training galaxies' standardised input features; a
galaxy's ``ood_score`` is its negative log density there (nats), and a galaxy is
``out_of_distribution`` when its score exceeds the threshold: the ``quantile`` (0.99 by
default) of the validation galaxies' scores, so that about 1% of in-distribution galaxies
are flagged.

Why this score. The photometric features (colours and magnitudes) are strongly correlated:
a single glitched band can break the run of colours while every feature stays inside its
training range, so a per-feature range check misses it and a model of the joint density
catches it. Measured on the mock sky (photometry inputs, 14,000 training galaxies, one band
of each test galaxy shifted by 0.5-1 mag, either sign), the ROC AUC against the unshifted
galaxies: negative log density with 4 components 0.988 (89% of shifted galaxies flagged),
the smallest Mahalanobis distance to one of the same components 0.985, a single Gaussian
0.985 (85%); shifts of 2-5 mag are flagged by every variant. More components separate a
little better (8: 0.990) but fit the mock sky more tightly, so that more real galaxies look
foreign: of the real DR9 file they flag 4.3% with 4 components, 5.6% with 8, 5.9% with 16;
hence at most :data:`MAX_COMPONENTS`, and fewer for small training sets
(:data:`GALAXIES_PER_PARAMETER`). Colours are differences of magnitudes, so the features
span fewer dimensions than they number; the covariance floor :data:`COVARIANCE_FLOOR` keeps
the density proper there, and, since every catalog's colours are built from its magnitudes
in the same way, adds only a constant to the score.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from galppl.data.prepare import Standardizer

# The share of validation galaxies left unflagged (ChainConfig.ood_quantile's default).
OOD_QUANTILE = 0.99
# At most this many mixture components: more fit the training sky more tightly without
# telling glitched photometry apart any better (see the module docstring).
MAX_COMPONENTS = 4
# Fewer components for small training sets: each needs this many training galaxies per
# free parameter (a mean and a full covariance: d + d(d+1)/2 numbers in d dimensions).
GALAXIES_PER_PARAMETER = 10
# Added to the diagonal of each component's covariance (standardised units, variance).
COVARIANCE_FLOOR = 1e-6


class OutOfDistributionWarning(UserWarning):
    """Some galaxies' inputs lie outside those the model was trained on."""


def flagged_ids(galaxy, flagged, most: int = 5) -> str:
    """The ids of the flagged galaxies for a warning: the first ``most``, then "..." if more."""
    ids = [str(g) for g in galaxy[flagged]]
    return ", ".join(ids[:most]) + (", ..." if len(ids) > most else "")


class InputDensity:
    """A Gaussian mixture density of standardised input features, and the flag threshold.

    standardizer: the per-feature mean and standard deviation of the training galaxies
    (a fitted :class:`~galppl.data.prepare.Standardizer`). weights (component,), means
    (component, feature) and precision_cholesky (component, feature, feature): the mixture
    in standardised units, each component's precision matrix being
    ``precision_cholesky[k] @ precision_cholesky[k].T``. threshold: scores above it are
    flagged (nats). quantile: the share of validation galaxies whose score is at or below
    the threshold.
    """

    def __init__(self, standardizer: Standardizer, weights, means, precision_cholesky, threshold: float,
                 quantile: float):
        self.standardizer = standardizer
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.precision_cholesky = np.asarray(precision_cholesky, dtype=np.float64)
        k, d = len(self.weights), len(standardizer.mean)
        if self.means.shape != (k, d) or self.precision_cholesky.shape != (k, d, d):
            raise ValueError(f"a mixture of {k} components over {d} features needs means of shape {(k, d)} and "
                             f"precision_cholesky of shape {(k, d, d)}, got {self.means.shape} and "
                             f"{self.precision_cholesky.shape}")
        if not (0 < quantile < 1) or not np.isfinite(threshold):
            raise ValueError(f"quantile must be in (0, 1) and threshold finite, got {quantile!r} and {threshold!r}")
        self.threshold = float(threshold)
        self.quantile = float(quantile)

    @classmethod
    def fit(cls, training: np.ndarray, validation: np.ndarray, quantile: float, seed: int = 0) -> InputDensity:
        """Fit the mixture on ``training`` (galaxy, feature) rows and set the threshold at the
        ``quantile`` of the ``validation`` rows' scores. Rows with a non-finite feature are left out."""
        from sklearn.mixture import GaussianMixture

        training, validation = _complete(training, "training"), _complete(validation, "validation")
        standardizer = Standardizer().fit(training)
        d = training.shape[1]
        components = int(np.clip(len(training) // (GALAXIES_PER_PARAMETER * (d + d * (d + 1) // 2)), 1, MAX_COMPONENTS))
        mixture = GaussianMixture(components, covariance_type="full", reg_covar=COVARIANCE_FLOOR, random_state=seed)
        mixture.fit(standardizer.transform(training))
        density = cls(standardizer, mixture.weights_, mixture.means_, mixture.precisions_cholesky_, 0.0, quantile)
        density.threshold = float(np.quantile(density.score(validation), quantile))
        return density

    def score(self, features: np.ndarray) -> np.ndarray:
        """Negative log density (nats, in standardised feature units) of each row of
        ``features`` (galaxy, feature); NaN for rows with a non-finite feature."""
        features = np.asarray(features, dtype=np.float64)
        out = np.full(len(features), np.nan)
        rows = np.isfinite(features).all(axis=1)
        z = self.standardizer.transform(features[rows])
        # log N(z | mean_k, P_k^-1) = -d/2 log(2 pi) + log det L_k - |(z - mean_k) L_k|^2 / 2, P_k = L_k L_k^T
        whitened = np.einsum("nd,kde->nke", z, self.precision_cholesky) - np.einsum("kd,kde->ke", self.means,
                                                                                     self.precision_cholesky)
        log_det = np.log(np.diagonal(self.precision_cholesky, axis1=1, axis2=2)).sum(axis=1)
        log_normal = -0.5 * z.shape[1] * np.log(2 * np.pi) + log_det - 0.5 * (whitened ** 2).sum(axis=2)
        out[rows] = -logsumexp(log_normal + np.log(self.weights), axis=1)
        return out

    def flagged(self, scores: np.ndarray) -> np.ndarray:
        """True where a score exceeds the threshold (False for NaN scores: incomplete inputs
        have their own quality bits)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(scores) > self.threshold

    @property
    def num_components(self) -> int:
        return len(self.weights)

    def __repr__(self) -> str:
        return (f"InputDensity(components={self.num_components}, features={self.means.shape[1]}, "
                f"threshold={self.threshold:.2f}, quantile={self.quantile})")

    def to_dict(self) -> dict:
        """JSON-able numbers (Python floats: a JSON round trip gives them back exactly)."""
        return {"standardizer": self.standardizer.to_dict(), "weights": self.weights.tolist(),
                "means": self.means.tolist(), "precision_cholesky": self.precision_cholesky.tolist(),
                "threshold": self.threshold, "quantile": self.quantile}

    @classmethod
    def from_dict(cls, data: dict) -> InputDensity:
        """Inverse of :meth:`to_dict`."""
        return cls(Standardizer.from_dict(data["standardizer"]), data["weights"], data["means"],
                   data["precision_cholesky"], data["threshold"], data["quantile"])


def _complete(rows: np.ndarray, name: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) < 2:
        raise ValueError(f"{len(rows)} {name} galaxies have complete inputs; the input density needs at least 2")
    return rows
