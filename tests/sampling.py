"""Run a TimewarpIntegrator on the analytic double well and compare with the exact averages."""

import numpy as np
import openmm
import torch
from openmm import unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.testing import DriftGaussianFlow, double_well_exact, double_well_system

STIFFENING = 20.0
TEMPERATURE = 300.0
# |z| above this fails; with 25 batch means a correct sampler exceeds it with probability ~5e-4 per observable.
Z_LIMIT = 4.0


def batch_mean_z(series, exact, num_batches=25):
    """z-score of the mean of a correlated series against ``exact``, with a batch-means standard error."""
    series = np.asarray(series, dtype=float)
    usable = len(series) // num_batches * num_batches
    means = series[:usable].reshape(num_batches, -1).mean(axis=1)
    error = means.std(ddof=1) / np.sqrt(num_batches)
    return float((series.mean() - exact) / error)


def double_well_z_scores(num_samples=8000, move_interval=0, proposals=4, batch_size=3, seed=1, flow=None,
                         num_particles=1):
    """Sample the double well with Timewarp moves; return z-scores of P(x>0), <x> and <y^2+z^2>.

    Each frame contributes the average over its (independent) particles.
    """
    system, positions = double_well_system(num_particles, stiffening=STIFFENING)
    if flow is None:
        flow = drift_gaussian_flow()
    integrator = TimewarpIntegrator(TEMPERATURE * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds,
                                    flow=flow, moveInterval=move_interval, proposalsPerMove=proposals,
                                    batchSize=batch_size)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    samples = np.empty((num_samples, num_particles, 3))
    for i in range(num_samples):
        integrator.step(max(move_interval, 1))
        samples[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert integrator.getNumAccepted() > 0
    return double_well_z_scores_of(samples), integrator


def drift_gaussian_flow():
    """The asymmetric proposal the exactness tests use (TorchScript)."""
    return torch.jit.script(DriftGaussianFlow(sigma=0.06, drift=0.03, coupling=0.2, temperature=TEMPERATURE))


def double_well_z_scores_of(samples):
    """z-scores of P(x>0), <x> and <y^2+z^2> for samples [frames, particles, 3] started in the left well."""
    samples = samples[len(samples) // 10:]  # burn-in from the left well
    exact = double_well_exact(stiffening=STIFFENING, temperature=TEMPERATURE)
    return {
        "p_right": batch_mean_z((samples[..., 0] > 0).mean(1), exact["p_right"]),
        "mean_x": batch_mean_z(samples[..., 0].mean(1), exact["mean_x"]),
        "mean_r2": batch_mean_z((samples[..., 1:] ** 2).sum(-1).mean(1), exact["mean_r2"]),
    }
