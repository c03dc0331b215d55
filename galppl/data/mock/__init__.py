"""The mock SDSS sky: ``sky`` assembles the building blocks into ``galppl.data.simulate``.

- ``population``: cosmology tables, Baldry et al. 2012 mass function x volume, MGS selection;
- ``properties``: star formation, quenching, metallicity, sigma, black holes, dust, sizes, morphology;
- ``photometry``: two-template SEDs, Bell et al. 2003 M/L, k-corrections, extinction, errors;
- ``lines``: fibre emission lines (star formation, AGN, retired galaxies), noise, detectability;
- ``stamp_scene``: what a gri stamp shows (bulge + disc profiles, PSF, knots, neighbours);
- ``images``: the exact Fourier renderer of stamps (``render_stamps``);
- ``stamp_noise``: background and source noise at SDSS depth;
- ``stamp_reference``: the brute-force reference renderer the tests check ``images`` against.
"""
