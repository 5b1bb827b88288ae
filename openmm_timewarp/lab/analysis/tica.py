"""Time-lagged independent component analysis (TICA) for peptides larger than a dipeptide.

Features (:func:`tica_features`): all pairwise distances among carbon, nitrogen and sulphur atoms,
plus sin and cos of every backbone torsion (phi, psi). A model is fitted on reference MD
(:func:`fit_tica`) and any run is projected onto it (:func:`project`), so that runs are compared
on the same coordinates.

The TICs solve the generalised symmetric eigenproblem C(tau) v = lambda C(0) v with
scipy.linalg.eigh, where C(0) and C(tau) are the instantaneous and time-lagged covariances of the
mean-free features, symmetrised (reversible estimate: both time directions of each lagged pair).
Directions in which C(0) is numerically singular (for example a bond length that never changes)
are dropped first. Eigenvectors are normalised so that each TIC has unit variance under C(0); the
sign is fixed so that the largest-magnitude coefficient of each eigenvector is positive.
"""

from dataclasses import dataclass

import numpy as np

FEATURE_ELEMENTS = ("C", "N", "S")


@dataclass(frozen=True)
class TicaModel:
    """A fitted TICA model.

    Attributes
    ----------
    mean : numpy.ndarray, shape (n_features,)
        Feature mean subtracted before projection.
    components : numpy.ndarray, shape (n_features, dim)
        Column k maps mean-free features onto TIC k.
    eigenvalues : numpy.ndarray, shape (dim,)
        Autocorrelations of the TICs at the lag time, in decreasing order.
    lag : int
        Lag time in samples.
    """

    mean: np.ndarray
    components: np.ndarray
    eigenvalues: np.ndarray
    lag: int

    def timescales(self, sample_interval=1.0):
        """Implied timescales -lag / ln|lambda| (in units of ``sample_interval``).

        Parameters
        ----------
        sample_interval : float
            Time per sample.

        Returns
        -------
        numpy.ndarray, shape (dim,)
        """
        with np.errstate(divide="ignore"):
            return -self.lag * sample_interval / np.log(np.clip(np.abs(self.eigenvalues), 1e-300, 1.0 - 1e-15))


def feature_atom_indices(topology, elements=FEATURE_ELEMENTS):
    """Indices of the atoms whose element symbol is in ``elements``.

    Parameters
    ----------
    topology : mdtraj.Topology
    elements : sequence of str

    Returns
    -------
    numpy.ndarray of int
    """
    return np.array([a.index for a in topology.atoms if a.element is not None and a.element.symbol in elements],
                    dtype=int)


def tica_features(trajectory, elements=FEATURE_ELEMENTS):
    """TICA features of every frame: C/N/S pairwise distances (nm) and sin/cos of phi and psi.

    Parameters
    ----------
    trajectory : mdtraj.Trajectory
    elements : sequence of str
        Element symbols of the atoms whose pairwise distances are used.

    Returns
    -------
    numpy.ndarray, shape (n_frames, n_pairs + 2 * (n_phi + n_psi))
    """
    import mdtraj

    from .torsions import backbone_torsions

    atoms = feature_atom_indices(trajectory.topology, elements)
    pairs = np.array([(a, b) for k, a in enumerate(atoms) for b in atoms[k + 1:]], dtype=int).reshape(-1, 2)
    if len(pairs):
        distances = mdtraj.compute_distances(trajectory, pairs, periodic=False)
    else:
        distances = np.empty((len(trajectory), 0))
    phi, psi = backbone_torsions(trajectory)
    angles = np.radians(np.concatenate([phi, psi], axis=1))
    return np.concatenate([distances.astype(float), np.sin(angles), np.cos(angles)], axis=1)


def _chains(features):
    if isinstance(features, (list, tuple)):
        return [np.asarray(f, dtype=float) for f in features]
    return [np.asarray(features, dtype=float)]


def fit_tica(features, lag, dim=2, rtol=1e-6):
    """Fit TICA on one feature trajectory or several independent ones.

    Parameters
    ----------
    features : array_like, shape (n_frames, n_features), or list of such arrays
        Features (e.g. from :func:`tica_features`) of the fitting data, usually reference MD;
        lagged pairs are formed within each trajectory.
    lag : int
        Lag time in frames.
    dim : int
        Number of TICs kept.
    rtol : float
        Eigenvalues of C(0) below ``rtol`` times the largest are treated as zero (directions a
        fitting run barely explores would otherwise get huge weights and blow up projections of
        other runs).

    Returns
    -------
    TicaModel
    """
    from scipy.linalg import eigh

    lag = int(lag)
    chains = _chains(features)
    if lag < 1:
        raise ValueError("lag must be at least 1")
    pairs = [(c[:-lag], c[lag:]) for c in chains if len(c) > lag]
    if not pairs:
        raise ValueError(f"no trajectory is longer than the lag ({lag} frames)")
    x0 = np.concatenate([a for a, _ in pairs])
    xt = np.concatenate([b for _, b in pairs])
    mean = 0.5 * (x0.mean(axis=0) + xt.mean(axis=0))
    x0 = x0 - mean
    xt = xt - mean
    n = len(x0)
    c0 = (x0.T @ x0 + xt.T @ xt) / (2.0 * n)
    ct = (x0.T @ xt + xt.T @ x0) / (2.0 * n)
    # Restrict to the numerically non-singular subspace of C(0), then solve the generalised problem there.
    s, u = eigh(c0)
    keep = s > rtol * max(s.max(), 0.0)
    basis = u[:, keep]
    values, vectors = eigh(basis.T @ ct @ basis, basis.T @ c0 @ basis)
    order = np.argsort(values)[::-1][:dim]
    components = basis @ vectors[:, order]
    signs = np.sign(components[np.argmax(np.abs(components), axis=0), np.arange(components.shape[1])])
    components = components * np.where(signs == 0, 1.0, signs)
    return TicaModel(mean=mean, components=components, eigenvalues=values[order], lag=lag)


def project(model, features):
    """Project features onto the TICs of a fitted model.

    Parameters
    ----------
    model : TicaModel
    features : array_like, shape (n_frames, n_features)

    Returns
    -------
    numpy.ndarray, shape (n_frames, dim)
    """
    features = np.asarray(features, dtype=float)
    if features.shape[-1] != len(model.mean):
        raise ValueError(f"{features.shape[-1]} features given, the model was fitted on {len(model.mean)}")
    return (features - model.mean) @ model.components


def save_tica(model, path):
    """Write a fitted model to a ``.npz`` file.

    Parameters
    ----------
    model : TicaModel
    path : str or path-like
    """
    np.savez(path, mean=model.mean, components=model.components, eigenvalues=model.eigenvalues, lag=model.lag)


def load_tica(path):
    """Read a model written by :func:`save_tica`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    TicaModel
    """
    with np.load(path) as data:
        return TicaModel(mean=data["mean"], components=data["components"], eigenvalues=data["eigenvalues"],
                         lag=int(data["lag"]))
