"""TICA: recovers a known slow coordinate, tolerates singular features; features of a peptide."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from openmm_timewarp.lab.analysis import effective_sample_size, fit_tica, project, tica_features
from openmm_timewarp.lab.analysis.tica import load_tica, save_tica

from test_analysis_geometry import dipeptide_trajectory


def _ar1(rho, n, rng):
    return lfilter([math.sqrt(1.0 - rho**2)], [1.0, -rho], rng.standard_normal(n))


def _mixed_features(n, seed):
    rng = np.random.default_rng(seed)
    slow = _ar1(0.99, n, rng)
    fast = np.stack([_ar1(0.2, n, rng) for _ in range(4)], axis=1)
    hidden = np.column_stack([slow, fast])
    mixing = np.random.default_rng(99).normal(size=(5, 5))  # the same mixing for every data set
    features = hidden @ mixing
    constant = np.full((n, 1), 0.153)  # a rigid distance: C(0) is singular in this direction
    return np.hstack([features, constant, features[:, :1] * 2.0]), slow


def test_tica_recovers_the_slow_coordinate():
    features, slow = _mixed_features(60_000, 1)
    lag = 10
    model = fit_tica(features, lag=lag, dim=2)
    tics = project(model, features)
    assert abs(np.corrcoef(tics[:, 0], slow)[0, 1]) > 0.98
    # autocorrelation of the slow process at the lag: 0.99^10
    assert model.eigenvalues[0] == pytest.approx(0.99**lag, abs=0.03)
    assert model.eigenvalues[1] < 0.2
    assert model.timescales()[0] == pytest.approx(-1.0 / math.log(0.99), rel=0.35)
    # unit variance, uncorrelated TICs on the fitting data
    assert np.allclose(np.cov(tics, rowvar=False), np.eye(2), atol=0.05)
    # the slow TIC has the small ESS
    assert effective_sample_size(tics[:, 0]) < effective_sample_size(tics[:, 1]) / 10


def test_tica_fitted_on_several_trajectories_projects_new_runs():
    chains = [_mixed_features(20_000, seed)[0] for seed in (2, 3, 4)]
    model = fit_tica(chains, lag=5)
    other, slow = _mixed_features(20_000, 5)
    assert abs(np.corrcoef(project(model, other)[:, 0], slow)[0, 1]) > 0.95
    with pytest.raises(ValueError):
        project(model, other[:, :3])
    with pytest.raises(ValueError):
        fit_tica([other[:3]], lag=5)


def test_tica_model_round_trip(tmp_path):
    features, _ = _mixed_features(5_000, 6)
    model = fit_tica(features, lag=3)
    save_tica(model, tmp_path / "tica.npz")
    loaded = load_tica(tmp_path / "tica.npz")
    assert loaded.lag == 3
    assert np.allclose(project(loaded, features), project(model, features))


def test_tica_features_of_a_peptide():
    rng = np.random.default_rng(0)
    phi = rng.uniform(-180, 180, 20)
    psi = rng.uniform(-180, 180, 20)
    features = tica_features(dipeptide_trajectory(phi, psi))
    # 8 C/N atoms (oxygens excluded): 28 distances, then sin phi, sin psi, cos phi, cos psi
    assert features.shape == (20, 28 + 4)
    assert np.allclose(features[:, 28], np.sin(np.radians(phi)), atol=1e-4)
    assert np.allclose(features[:, 31], np.cos(np.radians(psi)), atol=1e-4)
    assert np.allclose(features[:, 0], 0.15, atol=1e-5)  # the first pair is the bonded CH3-C of ACE
    assert np.all(features[:, :28] > 0.0)
