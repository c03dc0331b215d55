"""Who is in the mock sky: cosmology tables, the stellar mass function x volume, and the
SDSS Main Galaxy Sample selection.

The draw is "efficient rejection": (z, log M*) come from phi(M*) dV/dz restricted, at each
z, to masses above a conservative flux-limit completeness mass (no galaxy below it could
pass r_petro < 17.77 even with the brightest mass-to-light ratio the simulator makes);
the full galaxy is then simulated and the real selection applied (``mgs_selected``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.cosmology import FlatLambdaCDM

from galppl.physics import H0, M_SUN_R, OMEGA_M

Z_MIN = 0.005
Z_MAX = 0.3

# Strauss et al. 2002, AJ 124, 1810: Main Galaxy Sample target selection.
MGS_R_PETRO_LIMIT = 17.77  # mag, Petrosian r (extinction-corrected in SDSS; see mgs_selected)
MGS_MU50_LIMIT = 24.5  # mag arcsec-2, r-band Petrosian half-light surface brightness

# Baldry et al. 2012, MNRAS 421, 621 (GAMA, z < 0.06), double Schechter, h = 0.7.
BALDRY12 = {"log_mstar_knee": 10.66, "phi1": 3.96e-3, "alpha1": -0.35, "phi2": 0.79e-3, "alpha2": -1.47}

# The masses of dr9_galaxyzoo_5k (the scale the mock's M/L is calibrated to, see photometry)
# run higher than GAMA's: Baldry et al. 2012 is shifted by this many dex onto that scale
# (tuned so the mock's n(z) and mass quantiles match the real sample).
MASS_SCALE_OFFSET = 0.12
LOG_MSTAR_MIN = 7.0  # below this the MGS holds essentially nothing (and Baldry+12 is unconstrained)
LOG_MSTAR_MAX = 12.5
# Lowest log(M/L_r) the photometry can produce (bluest colour, Kroupa), minus a safety margin.
_MIN_LOG_ML = -0.75


@dataclass(frozen=True)
class DistanceTable:
    """Flat LambdaCDM distances tabulated on a fine z grid and linearly interpolated.

    astropy's integrals cost ~ms per call; the simulator needs them for 1e5 galaxies per
    batch, so they are tabulated once (3001 points, 0 <= z <= 0.45, relative error < 1e-6).
    """

    z: np.ndarray
    d_c: np.ndarray  # comoving distance, Mpc
    age: np.ndarray  # age of the universe, Gyr
    dvdz: np.ndarray  # comoving volume element per steradian, Mpc3 sr-1 (per unit z)

    @classmethod
    def build(cls, h0: float = H0, om0: float = OMEGA_M, z_max: float = 0.45, n: int = 3001) -> DistanceTable:
        cosmo = FlatLambdaCDM(H0=h0, Om0=om0)
        z = np.linspace(0.0, z_max, n)
        d_c = cosmo.comoving_distance(z).to_value("Mpc")
        age = cosmo.age(z).to_value("Gyr")
        dvdz = cosmo.differential_comoving_volume(z).to_value("Mpc3 / sr")
        return cls(z=z, d_c=d_c, age=age, dvdz=dvdz)

    def comoving(self, z):
        """Comoving distance in Mpc."""
        return np.interp(z, self.z, self.d_c)

    def luminosity_distance(self, z):
        """Luminosity distance in Mpc (flat universe: (1+z) D_C)."""
        return (1.0 + np.asarray(z)) * self.comoving(z)

    def angular_diameter_distance(self, z):
        """Angular-diameter distance in Mpc (flat universe: D_C / (1+z))."""
        return self.comoving(z) / (1.0 + np.asarray(z))

    def distance_modulus(self, z):
        """5 log10(D_L / 10 pc), mag."""
        return 5.0 * np.log10(self.luminosity_distance(z)) + 25.0

    def age_gyr(self, z):
        """Age of the universe at z, Gyr."""
        return np.interp(z, self.z, self.age)

    def kpc_per_arcsec(self, z):
        """Proper kpc per arcsec at z."""
        return self.angular_diameter_distance(z) * 1e3 * np.pi / (180.0 * 3600.0)


def baldry12_phi(log_mstar):
    """Baldry et al. 2012 double Schechter mass function, Mpc-3 dex-1 (h = 0.7), on the DR9
    catalog mass scale (knee shifted by ``MASS_SCALE_OFFSET``)."""
    p = BALDRY12
    x = 10.0 ** (np.asarray(log_mstar) - p["log_mstar_knee"] - MASS_SCALE_OFFSET)
    return np.log(10.0) * np.exp(-x) * (p["phi1"] * x ** (p["alpha1"] + 1) + p["phi2"] * x ** (p["alpha2"] + 1))


def completeness_mass(z, dist: DistanceTable, r_limit: float = MGS_R_PETRO_LIMIT):
    """Conservative lowest log M* that could reach r_petro < ``r_limit`` at redshift z.

    Takes the brightest mass-to-light ratio the photometry makes (``_MIN_LOG_ML``), 0.3 mag
    of slack for negative k-corrections and photometric noise; galaxies below it never pass.
    """
    abs_r_limit = r_limit + 0.3 - dist.distance_modulus(z)
    log_l = 0.4 * (M_SUN_R - abs_r_limit)
    return np.clip(log_l + _MIN_LOG_ML, LOG_MSTAR_MIN, LOG_MSTAR_MAX)


@dataclass(frozen=True)
class PopulationGrid:
    """phi(M*) dV/dz on a (z, log M*) grid, zeroed below the completeness mass: the
    proposal from which (z, log M*) are drawn (piecewise constant within a cell)."""

    z_edges: np.ndarray
    m_edges: np.ndarray
    cdf: np.ndarray  # cumulative cell weights, flattened (z major)

    @classmethod
    def build(cls, dist: DistanceTable, nz: int = 600, nm: int = 550) -> PopulationGrid:
        z_edges = np.linspace(Z_MIN, Z_MAX, nz + 1)
        m_edges = np.linspace(LOG_MSTAR_MIN, LOG_MSTAR_MAX, nm + 1)
        zc = 0.5 * (z_edges[1:] + z_edges[:-1])
        mc = 0.5 * (m_edges[1:] + m_edges[:-1])
        w = np.interp(zc, dist.z, dist.dvdz)[:, None] * baldry12_phi(mc)[None, :]
        # keep a cell if any of it lies above the completeness mass
        w = np.where(m_edges[1:][None, :] > completeness_mass(zc, dist)[:, None], w, 0.0)
        cdf = np.cumsum(w.ravel())
        return cls(z_edges=z_edges, m_edges=m_edges, cdf=cdf / cdf[-1])

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (z, log M*) pairs from the proposal (uniform within each grid cell)."""
        cell = np.searchsorted(self.cdf, rng.random(n), side="right")
        cell = np.minimum(cell, self.cdf.size - 1)
        nm = self.m_edges.size - 1
        iz, im = np.divmod(cell, nm)
        u = rng.random((2, n))
        z = self.z_edges[iz] + u[0] * (self.z_edges[iz + 1] - self.z_edges[iz])
        m = self.m_edges[im] + u[1] * (self.m_edges[im + 1] - self.m_edges[im])
        return z, m


def sky_positions(rng: np.random.Generator, n: int, ra_range=(120.0, 240.0), dec_range=(0.0, 60.0)):
    """Random (ra, dec) in degrees, uniform on the sphere within a patch of the SDSS footprint."""
    ra = rng.uniform(*ra_range, n)
    s = rng.uniform(np.sin(np.radians(dec_range[0])), np.sin(np.radians(dec_range[1])), n)
    return ra, np.degrees(np.arcsin(s))


def mgs_selected(mag_petro_r, mu50_r):
    """Strauss et al. 2002 Main Galaxy Sample cut on measured, Milky Way extinction-corrected
    Petrosian r < 17.77 and r-band half-light surface brightness mu50 < 24.5 mag arcsec-2."""
    return (np.asarray(mag_petro_r) < MGS_R_PETRO_LIMIT) & (np.asarray(mu50_r) < MGS_MU50_LIMIT)
