"""Post-hoc recalibration of a chain's continuous blocks on held-out galaxies, in catalog units:
temperature scaling (Guo et al. 2017, "On calibration of modern neural networks") extended by
a location shift, so that a posterior that is off-centre, not only too narrow, is corrected.

Each block's residual is put around its mean head as ``mean + shift + T * residual`` per
variable (:class:`~galppl.models.block.TemperedShift`, standardised units). Both are fitted
with every weight frozen, by one of two objectives, chosen per block from the labels:

- **joint** (``"likelihood"``): the galaxies with all of the block's variables, by maximum
  likelihood of the block's density (for a child, of the mixture over its parents' draws);
- **marginal** (``"marginal_likelihood"``): where most labelled galaxies lack some of the
  block's variables (a real catalog with z and log M* but no log SFR), each labelled
  variable's own shift and T maximise the likelihood of its marginal. The shift and T of one
  variable move only that coordinate of every draw (the transform is elementwise after the
  flow), so its marginal under (s, T) is the marginal of the uncalibrated draws moved and
  scaled: the draws (given the recalibrated parents' draws) are made once, and each galaxy's
  marginal density is a Gaussian kernel estimate from them whose variance is the draws' own
  (:func:`_shrunk_kernel`), so the kernels do not bias T. The variables nobody labels keep
  their shift and temperature exactly, and the flow's dependence between the variables (what
  the joint TARP sees) is kept: only the margins move.

Either way the shift is then moved so that each refitted variable's mean PIT over the same
galaxies is 1/2, and its temperature scaled so that its PIT is as near uniform as one scale
makes it (:func:`_centre`): the likelihood weighs a galaxy by the sharpness of its posterior,
and sets the temperature by the tails where the flow's shape is not the residuals'; the PIT
(and so SBC and coverage) counts every galaxy once. On the main job's props chain the
likelihood's shift left the test set's mean PIT at 0.525 (log M*) and 0.528 (z) and their SBC
rank ECDFs outside the 99% band; centred, 0.507 and 0.503, inside it. Its temperature for
log SFR (1.064) left 68% coverage at 0.71 and the SBC failing (chi2 p 0.012); the PIT's
(1.053), 0.70 and passing (p 0.02).

With ``outliers`` (``posterior.recalibrate``, a model taken to another sky), each refitted
variable also gets an outlier share p and widening W >= 1 (:class:`~galppl.models.block.Calibration`):
a share p of its draws has the residual widened W times more (for the marginal fits the
marginal is then ``(1 - p) k(T) + p k(T W)``). Real galaxies include blends and bad photometry
that the mock lacks: their residuals are more peaked, with heavier tails, than the flow's, and
one temperature fitted by likelihood widens every posterior to reach the tails (DR9, z and
log M* from 500 real galaxies: 68% coverage 0.74 and 0.77 where 95% was 0.96). The PIT scale
brings one temperature's middle back but leaves the tails short (``benchmarks/table1.py``, 3
splits: 68% / 95% coverage 0.681 / 0.931 for z, 0.676 / 0.919 for log M*); with the outlier
share, 0.670 / 0.949 and 0.675 / 0.938. A fine-tune uses it too (its flow's shape is the first sky's).
The fit after training does not: there the validation galaxies come from the training sky,
and on a briefly trained model the mixture traded 68% coverage (0.61) for likelihood.

With ``conditional`` (the fit, a fine-tune, and ``posterior.recalibrate`` by default), each
refitted variable's log temperature is also linear in the block's mean, its predicted values
in standardised units (a (variable, mean) slope, :class:`~galppl.models.block.TemperedShift`):
another sky's residuals can be wider than the training sky's for some kinds of galaxy more
than for others. A mock-trained photometry model on DR9 (z and log M* from 500 real galaxies,
an experiment): the bluer half of the galaxies' residuals are ~1.5 times their posterior sd,
the redder half's ~1.1 times, and one temperature per variable leaves the 68% coverage of the
four u - r quartiles at 0.54-0.79 for log M* (0.56-0.77 for z); with the slopes, 0.61-0.73
(0.62-0.76). Only the width follows the mean, never the location: every coordinate of a draw
still moves monotonically, so the flow's dependence between the variables (and with the
unlabelled ones) is kept, where a shift linear in the mean moved z and log M* galaxy by galaxy
away from the unlabelled log SFR (a mock test's TARP ATC 0.006 -> 0.022; not built).
The fit after training uses it too since galppl 0.10. On the training sky the widths also
want to follow the mean: galppl 0.9's main job (calibrated on its 5,700 calibration and VAE
galaxies with one temperature per variable, scored on 30,000 fresh ones of each of two seeds,
``benchmarks/calibration_at_scale.py``) over-covered its most massive quartile (68%: 0.703 for
log M*) and its lowest-redshift quartile (0.706 for log M_BH); 0.10's, with the slopes, has
the worst quartile bin of log M*, log SFR, z and log M_BH within 0.019 of nominal on both
skies (0.9: 0.023 and 0.026 at worst). galppl < 0.9 calibrated on its validation galaxies,
which the early stopping had selected; there the slopes did not help (per-bin coverage no
nearer nominal).

Why the likelihood and not the CRPS (:mod:`galppl.models.marginal`, convex in (s, T) and
bandwidth-free, used for fine-tuning): the CRPS is in the units of y, so galaxies with wide
posteriors dominate it, while coverage counts every galaxy once, as the log score does. A
mock-trained model on DR9 (z and log M* from 500 real galaxies) got z coverage 0.63 / 0.89
(68% / 95%) recalibrated by marginal CRPS and 0.71 / 0.93 by marginal likelihood.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from galppl.models.block import Calibration, calibrated

if TYPE_CHECKING:
    from galppl.models.chain import ChainModel

# The chain's buffers a recalibration writes, by name prefix (``<prefix><block>``); nothing else changes.
OUTLIER_BUFFERS = ("outlier_fraction_", "outlier_widening_")
SLOPE_BUFFERS = ("log_temperature_slope_",)
CALIBRATION_BUFFERS = ("shift_", "temperature_", *OUTLIER_BUFFERS, *SLOPE_BUFFERS)
# Fewer held-out galaxies with a value than this leave that calibration as it is.
MIN_GALAXIES = 10
# Draws per galaxy for the marginal likelihood's kernel density estimate.
MARGINAL_DRAWS = 128
# The outlier shares and widenings are fitted only on this many labelled galaxies or more (a
# share of a few per cent needs a few outliers to be seen), from this start (share, widening):
# a few galaxies far out. (A second start, a broad second scale (0.3, 1.5), changed the DR9
# coverage by <= 0.004 where it won.)
MIN_OUTLIER_GALAXIES = 100
OUTLIER_START = (0.05, 3.0)
# L-BFGS iterations of a block's calibration. With the temperature's slopes (3 x 3 for the core)
# 50 left the fit short of the optimum: two recalibrations of one model on the same 1,000 galaxies,
# from starts differing only in z's shift and temperature, gave log M* 68% coverage 0.683 and
# 0.661 on the same test galaxies (tests/test_transfer.py); with 200 they agree.
MAX_ITER = 200
# A temperature that follows the block's mean (``conditional``) is fitted only on this many
# labelled galaxies or more (a slope per mean and variable; on DR9 200 were enough, below).
MIN_SLOPE_GALAXIES = 100


def calibration_plan(chain: ChainModel, targets: dict[str, torch.Tensor]) -> dict[str, dict]:
    """How each continuous block would be recalibrated on these targets (block name ->
    (galaxy, dim), catalog units, NaN where missing): block name -> ``{"method": ...,
    "variables": [...], "labelled": {variable: galaxies}}``.

    ``method`` is ``"likelihood"`` when at least :data:`MIN_GALAXIES` galaxies, and at least
    half of those labelling any one of its variables, have all of them; else
    ``"marginal_likelihood"`` for the variables labelled on at least :data:`MIN_GALAXIES` galaxies;
    else ``"unchanged"``. ``variables`` are the ones whose shift and temperature it refits.
    """
    plan = {}
    for block in chain.blocks:
        if block.kind == "bernoulli":
            continue
        values = targets[block.name]
        labelled = (~torch.isnan(values)).sum(0)
        complete = int((~torch.isnan(values)).all(-1).sum())
        counts = dict(zip(block.variables, labelled.tolist()))
        if complete >= MIN_GALAXIES and 2 * complete >= int(labelled.max()):
            method, variables = "likelihood", list(block.variables)
        else:
            variables = [v for v, n in counts.items() if n >= MIN_GALAXIES]
            method = "marginal_likelihood" if variables else "unchanged"
        plan[block.name] = {"method": method, "variables": variables, "labelled": counts}
    return plan


def recalibrate_blocks(chain: ChainModel, features: torch.Tensor, targets: dict[str, torch.Tensor], *,
                       parent_draws: int = 32, max_galaxies: int = 2048, max_iter: int = MAX_ITER,
                       outliers: bool = False, conditional: bool = False, seed: int = 0) -> dict[str, dict]:
    """Set each continuous block's shift and temperatures to fit these held-out galaxies.

    A network trained to the best validation likelihood is still somewhat over-confident
    (its training residuals are smaller than new galaxies' ones), and its residual can sit
    off-centre. features (galaxy, feature); targets block name -> (galaxy, dim) in catalog
    units, NaN where missing. Each
    block is refitted as :func:`calibration_plan` says (module docstring): by likelihood
    under what prediction will actually use (for a child, ``log mean_k p(y | parents_k, h)``
    over ``parent_draws`` ancestral draws of its already recalibrated parents, so the errors
    of the parents' posteriors are accounted for), or by the likelihood of each labelled
    variable's marginal from :data:`MARGINAL_DRAWS` draws; on at most ``max_galaxies`` galaxies (a
    seeded subset). Shift and log T (with ``outliers`` and at least :data:`MIN_OUTLIER_GALAXIES`
    galaxies, also each variable's outlier share and widening; with ``conditional`` and at least
    :data:`MIN_SLOPE_GALAXIES`, the slopes of its log temperature on the block's mean, module
    docstring) are found together by L-BFGS (``max_iter`` iterations), then the temperature is scaled to the most
    uniform PIT and the shift centred on the mean PIT of all the labelled galaxies
    (:func:`_centre`). Only the buffers named by
    :data:`CALIBRATION_BUFFERS` change, and of those only the refitted variables' entries. The
    draws are seeded with ``seed`` (the caller's random state is left as it was), so a
    recalibration is reproducible. Call it on the validation set, never on the test set.
    Returns block name -> {"shift": [...] (standardised units), "temperature": [...],
    "outlier_fraction": [...], "outlier_widening": [...], "log_temperature_slope": [[...]]
    (variable x mean), "centring": [...] (the part of the
    shift the centring moved), "method": ..., "variables": [...]} (the plan's method and
    refitted variables).
    """
    was_training = chain.training
    chain.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out = _recalibrate(chain, features, targets, parent_draws, max_galaxies, max_iter, outliers, conditional)
    chain.zero_grad(set_to_none=True)
    chain.train(was_training)
    return out


def _recalibrate(chain, features, targets, parent_draws, max_galaxies, max_iter, outliers,
                 conditional) -> dict[str, dict]:
    plan = calibration_plan(chain, targets)
    out = {}
    with torch.no_grad():
        h = chain.represent(features)
    for block in chain.blocks:
        if block.kind == "bernoulli":
            continue
        target = targets[block.name]
        chain.check_support(block, target)
        method, variables = plan[block.name]["method"], plan[block.name]["variables"]
        if method == "likelihood":
            rows = _subset((~torch.isnan(target).any(-1)).nonzero().flatten(), max_galaxies if block.parents else None)
            leaves = _fit(chain, block, h, features, target, rows, parent_draws, max_iter, outliers, conditional)
            leaves.store(chain, block, list(range(block.dim)))
        elif method == "marginal_likelihood":
            _fit_marginals(chain, block, h, features, target, variables, max_galaxies, max_iter, outliers,
                           conditional)
        centring = _centre(chain, block, features, target, variables, h)
        out[block.name] = {"shift": getattr(chain, f"shift_{block.name}").tolist(),
                           "temperature": getattr(chain, f"temperature_{block.name}").tolist(),
                           "outlier_fraction": getattr(chain, f"outlier_fraction_{block.name}").tolist(),
                           "outlier_widening": getattr(chain, f"outlier_widening_{block.name}").tolist(),
                           "log_temperature_slope": getattr(chain, f"log_temperature_slope_{block.name}").tolist(),
                           "centring": centring, "method": method, "variables": variables}
    return out


def _subset(rows: torch.Tensor, max_galaxies: int | None) -> torch.Tensor:
    """At most ``max_galaxies`` of ``rows``, a seeded subset (bounds the cost); all with None."""
    if max_galaxies is None or len(rows) <= max_galaxies:
        return rows
    generator = torch.Generator().manual_seed(0)
    return rows[torch.randperm(len(rows), generator=generator)[:max_galaxies]]


class _Leaves:
    """The parameters L-BFGS moves for one block's calibration, unconstrained: shift, log
    temperature, (with ``slope``, a (variables, dim) start) the slopes of the log temperature
    on the block's mean, and (from ``start`` = (outlier share, widening), None: no outliers) the
    ``softplus``-parametrised log widening (so the outlier component is the wider one) and the
    logit of the outlier share, per variable."""

    def __init__(self, shift: torch.Tensor, log_temperature: torch.Tensor, start: tuple[float, float] | None,
                 slope: torch.Tensor | None = None):
        self.shift = shift.detach().clone().requires_grad_(True)
        self.log_temperature = log_temperature.detach().clone().requires_grad_(True)
        self.slope = None if slope is None else slope.detach().clone().requires_grad_(True)
        self.outliers = start is not None
        if self.outliers:
            fraction, widening = start
            self.widening = torch.full_like(self.shift, math.log(math.expm1(math.log(widening)))).requires_grad_(True)
            self.logit = torch.full_like(self.shift, math.log(fraction / (1 - fraction))).requires_grad_(True)

    def free(self) -> list[torch.Tensor]:
        return ([self.shift, self.log_temperature] + ([] if self.slope is None else [self.slope])
                + ([self.widening, self.logit] if self.outliers else []))

    def calibration(self) -> Calibration:
        slope = 0.0 if self.slope is None else self.slope
        if not self.outliers:
            return Calibration(self.shift, self.log_temperature, log_temperature_slope=slope)
        return Calibration(self.shift, self.log_temperature, torch.nn.functional.softplus(self.widening), self.logit,
                           slope)

    def store(self, chain, block, columns: list[int]) -> None:
        """Write these entries for ``columns`` of ``block`` into the chain's buffers: the outlier
        share and the slopes as fitted, or none (share 0, widening 1, slopes 0) where not."""
        fitted = Calibration(*(torch.as_tensor(p, dtype=self.shift.dtype).detach() for p in self.calibration()))
        getattr(chain, f"shift_{block.name}")[columns] = fitted.shift
        getattr(chain, f"temperature_{block.name}")[columns] = fitted.log_temperature.exp()
        # What was not fitted is reset for these columns: the fit saw none of it.
        getattr(chain, f"log_temperature_slope_{block.name}")[columns] = fitted.log_temperature_slope
        getattr(chain, f"outlier_widening_{block.name}")[columns] = fitted.log_widening.exp()
        getattr(chain, f"outlier_fraction_{block.name}")[columns] = torch.sigmoid(fitted.outlier_logit)


def _fit(chain, block, h, features, target, rows, parent_draws, max_iter, outliers, conditional) -> _Leaves:
    """The calibration of one block maximising the held-out (mixture) likelihood."""
    zero = torch.zeros_like(getattr(chain, f"shift_{block.name}"))
    with torch.no_grad():
        parents = {}
        if block.parents:
            drawn = chain.model(features[rows], parent_draws)  # standardised, (draw, galaxy, dim)
            parents = {p: drawn[p] for p in block.parents}
        mean = chain.heads[block.name](h[rows])["mean"]
        # Conditioned once: each L-BFGS step only puts the calibration after the flow.
        flow = chain.conditioned_flow(block, h[rows], parents)
    slope = zero.new_zeros(block.dim, block.dim) if conditional and len(rows) >= MIN_SLOPE_GALAXIES else None
    leaves = _Leaves(zero, zero, OUTLIER_START if outliers and len(rows) >= MIN_OUTLIER_GALAXIES else None, slope)

    def negative_log_likelihood():
        distribution = calibrated(flow, mean, leaves.calibration(), chain.catalog_transforms(block))
        lp = distribution.log_prob(target[rows])
        if block.parents:
            lp = torch.logsumexp(lp, dim=0) - math.log(parent_draws)
        return -lp.mean()

    _minimise(negative_log_likelihood, leaves.free(), max_iter)
    return leaves


def _fit_marginals(chain, block, h, features, target, variables, max_galaxies, max_iter, outliers, conditional):
    """Refit the shift and temperature of each of ``variables`` of ``block`` (with ``outliers``,
    also its outlier share and widening; with ``conditional``, the slopes of its log temperature
    on the block's mean) on its marginal likelihood."""
    rows = _subset((~torch.isnan(target)).any(-1).nonzero().flatten(), max_galaxies)
    with torch.no_grad():
        parents, extra = {}, (MARGINAL_DRAWS,)
        if block.parents:  # the recalibrated parents' ancestral draws give the draws dimension
            drawn = chain.model(features[rows], MARGINAL_DRAWS)
            parents, extra = {p: drawn[p] for p in block.parents}, ()
        zero = torch.zeros_like(getattr(chain, f"shift_{block.name}"))
        uncalibrated = chain.block_distribution(block, h[rows], parents, calibration=(zero, zero)).sample(extra)
        mean = chain.heads[block.name](h[rows])["mean"]
        residual = chain.standardise(block, uncalibrated) - mean  # (draw, galaxy, dim), before shift and T
        observed = chain.standardise(block, target[rows])  # NaN stays NaN, per element
    columns = [block.variables.index(v) for v in variables]
    kernels, labelled_means = [], []  # per refitted variable, over the galaxies that label it
    for j in columns:
        labelled = ~torch.isnan(observed[:, j])
        kernels.append((*_shrunk_kernel(residual[:, labelled, j]), observed[labelled, j] - mean[labelled, j]))
        labelled_means.append(mean[labelled])
    current = chain.calibration(block)
    fewest = min(len(gap) for _, _, gap in kernels)
    leaves = _Leaves(current.shift[columns], current.log_temperature[columns],
                     OUTLIER_START if outliers and fewest >= MIN_OUTLIER_GALAXIES else None,
                     current.log_temperature_slope[columns] if conditional and fewest >= MIN_SLOPE_GALAXIES else None)

    def log_marginal(k, shift, log_scale):
        # The marginal density of mean + s + T x at y: the kernel estimate of x's density at (y - mean - s) / T.
        centres, bandwidth, gap = kernels[k]
        u = (gap - shift) / log_scale.exp()
        return torch.logsumexp(torch.distributions.Normal(centres, bandwidth).log_prob(u), 0) - math.log(len(centres)) \
            - log_scale

    def negative_log_likelihood():
        calibration, total = leaves.calibration(), 0.0
        for k in range(len(columns)):
            log_temperature = calibration.log_temperature[k]  # per galaxy where the temperature follows the mean
            if leaves.slope is not None:
                log_temperature = log_temperature + labelled_means[k] @ calibration.log_temperature_slope[k]
            lp = log_marginal(k, calibration.shift[k], log_temperature)
            if leaves.outliers:
                logit = calibration.outlier_logit[k]
                wider = log_marginal(k, calibration.shift[k], log_temperature + calibration.log_widening[k])
                lp = torch.logaddexp(torch.nn.functional.logsigmoid(-logit) + lp,
                                     torch.nn.functional.logsigmoid(logit) + wider)
            total = total - lp.mean()
        return total

    _minimise(negative_log_likelihood, leaves.free(), max_iter)
    leaves.store(chain, block, columns)


def _centre(chain, block, features, target, variables, h) -> list[float]:
    """Move the shift of each of ``variables`` so that its mean PIT over these galaxies (all
    that label it) is 1/2, and scale its temperature so that its PIT is as near uniform as
    one scale makes it; return the shift's moves (standardised units, 0 for the others).

    The likelihood weighs each galaxy by the sharpness of its posterior, so where the narrow
    posteriors are off-centre in one direction and the wide ones in the other, the
    maximum-likelihood location leaves the PIT off-centre on average (the props chain: mean PIT
    0.52 for log M* and z on the very galaxies it was fitted on); and where the flow's shape is
    not the residuals' (more peaked, with heavier tails), the likelihood's temperature is set
    by the tails and leaves the central intervals too wide (log SFR: T 1.06, 68% coverage 0.71
    where the unscaled flow's was 0.68). The PIT counts every galaxy once, as SBC and coverage
    do. With ``e`` the draws' residuals about ``mean + shift`` (:data:`MARGINAL_DRAWS`
    ancestral draws per galaxy, given the recalibrated parents, as prediction draws them), a
    scale c of the temperature and a move d of the shift put the draws at
    ``mean + shift + d + c e``; for each c on a grid, d is the median of the pooled
    ``y_i - mean_i - shift - c e_ik`` (mean PIT 1/2 exactly), and the c kept minimises the
    Cramer-von Mises distance of the PIT values from uniform. Only that coordinate of every
    draw moves, monotonically: the dependence between the variables is kept.
    """
    moves = [0.0] * block.dim
    rows = (~torch.isnan(target)).any(-1).nonzero().flatten()
    if not variables:
        return moves
    with torch.no_grad():
        drawn = chain.model(features[rows], MARGINAL_DRAWS)[block.name]  # standardised (draw, galaxy, dim)
        observed = chain.standardise(block, target[rows])
        mean = chain.heads[block.name](h[rows])["mean"]
    shift = getattr(chain, f"shift_{block.name}")
    temperature = getattr(chain, f"temperature_{block.name}")
    for variable in variables:
        j = block.variables.index(variable)
        labelled = ~torch.isnan(observed[:, j])
        centre = mean[labelled, j] + shift[j]
        residual = (drawn[:, labelled, j] - centre).double()  # (draw, galaxy)
        gap = (observed[labelled, j] - centre).double()  # (galaxy,)
        scale, move = uniform_pit_scale(residual, gap)
        moves[j] = move
        shift[j] += move
        temperature[j] *= scale
    return moves


# Scales of the temperature tried by the PIT fit: 0.5 to 2, 1% apart.
PIT_SCALES = torch.exp(torch.linspace(math.log(0.5), math.log(2.0), 141, dtype=torch.float64))


def uniform_pit_scale(residual: torch.Tensor, gap: torch.Tensor) -> tuple[float, float]:
    """The scale c (of :data:`PIT_SCALES`) and move d for which the PIT of ``gap`` (galaxy,)
    among ``d + c residual`` (draw, galaxy) is nearest uniform (Cramer-von Mises), d making its
    mean 1/2 (the median of the pooled ``gap - c residual``)."""
    n = gap.numel()
    expected = (2 * torch.arange(1, n + 1, dtype=torch.float64) - 1) / (2 * n)
    best = (math.inf, 1.0, 0.0)
    for c in PIT_SCALES.tolist():
        d = _median((gap - c * residual).flatten())
        pit = ((d + c * residual) <= gap).double().mean(0)
        distance = float(((pit.sort().values - expected) ** 2).sum())
        if distance < best[0]:
            best = (distance, c, d)
    return best[1], best[2]


def _median(values: torch.Tensor) -> float:
    """The median of a 1-d tensor, as ``torch.quantile(values, 0.5)`` gives it (the mean of
    the two middle values for an even count), by selection: one selection takes ~11 ms on the
    ~700,000 pooled residuals of a calibration where ``torch.quantile``'s sort takes ~70 ms (an
    even count needs two: the PIT scale's grid ran 3.4 times faster)."""
    n = values.numel()
    upper = values.kthvalue(n // 2 + 1).values
    if n % 2:
        return float(upper)
    return float(torch.lerp(values.kthvalue(n // 2).values, upper, 0.5))  # torch.quantile's interpolation


def _shrunk_kernel(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (draw, galaxy) and bandwidths (galaxy,) of a Gaussian kernel density estimate of
    each galaxy's draws whose variance is the draws' own: Silverman's bandwidth
    ``h = 0.9 min(sd, IQR / 1.34) K^(-1/5)``, and the draws shrunk towards their mean by
    ``1 / sqrt(1 + h^2 / sd^2)`` (Silverman 1986, sec. 6.4.1), so the kernels' width does not
    widen the estimate and bias the fitted temperature low."""
    k = draws.shape[0]
    centre, sd = draws.mean(0), draws.std(0).clamp_min(1e-6)
    quartiles = torch.quantile(draws, torch.tensor([0.25, 0.75], dtype=draws.dtype), dim=0)
    spread = torch.minimum(sd, (quartiles[1] - quartiles[0]) / 1.34).clamp_min(1e-3 * sd)
    bandwidth = 0.9 * spread * k ** -0.2
    shrink = 1 / torch.sqrt(1 + (bandwidth / sd) ** 2)
    return centre + shrink * (draws - centre), shrink * bandwidth


def _minimise(objective, parameters, max_iter: int) -> None:
    """L-BFGS (strong Wolfe line search) on ``objective()`` over ``parameters``, in place."""
    optimiser = torch.optim.LBFGS(parameters, lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimiser.step(closure)
