"""Observables and macrostates of any peptide of standard residues (capped or zwitterionic).

Observables are every backbone torsion phi(i) = C(i-1)-N(i)-CA(i)-C(i) and
psi(i) = N(i)-CA(i)-C(i)-N(i+1) (ACE and NME caps count as neighbours) and, where the side chain
has one, chi1 = N-CA-CB-XG. Angles are in degrees on (-180, 180].

Macrostates are Ramachandran regions per residue, defined explicitly:

=============================  ======================================================================
residue                        states (a partition of the residue's torsion space)
=============================  ======================================================================
most residues (phi and psi)    phi_positive: 0 <= phi < 120; beta: not phi_positive, psi >= 100 or
                               psi < -100; alphaR: not phi_positive, -100 <= psi < 100
glycine (phi and psi)          alphaR: phi < 0, -100 <= psi < 100; alphaL: phi >= 0, -100 <= psi <
                               100; beta: psi >= 100 or psi < -100 (either sign of phi)
proline, or psi only           alpha: -100 <= psi < 100; beta: otherwise
phi only (uncapped C-terminus) phi_positive: 0 <= phi < 120; alphaR: -90 <= phi < 0; beta: otherwise
                               (phi < -90 or phi >= 120)
glycine, phi only              phi_negative, phi_positive (0 <= phi < 180)
=============================  ======================================================================

Residues of the first kind also report alphaL (phi_positive and psi >= -45) and C7ax
(phi_positive and psi < -45), which split phi_positive. For alanine dipeptide these are the
states of the reference data (beta = beta_C7eq). A state is named ``<residue>:<state>``, the
residue by name and number (``ALA2:beta``); a joint state is the residues' states joined by ``|``.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

_CHI1 = {"ILE": "CG1", "VAL": "CG1", "SER": "OG", "THR": "OG1", "CYS": "SG", "CYX": "SG"}
_NO_CHI1 = {"GLY", "ALA", "ACE", "NME"}
_CAPS = {"ACE", "NME"}


@dataclass(frozen=True)
class Torsion:
    """One torsion observable: ``name`` (``phi2``, ``psi2``, ``chi1_2``), its four atoms, residue index and kind."""

    name: str
    atoms: Tuple[int, int, int, int]
    residue: int
    kind: str


@dataclass(frozen=True)
class Residue:
    """A residue's macrostates: its label (``ALA2``), kind, the columns of its phi and psi, its states."""

    label: str
    kind: str
    phi: Optional[int]
    psi: Optional[int]
    states: Tuple[str, ...]
    extra_states: Tuple[str, ...] = ()


def dihedrals(positions: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles (degrees, (-180, 180]) of atom quadruples in positions [..., N, 3] -> [..., Q]."""
    p = np.asarray(positions, dtype=np.float64)
    a, b, c, d = (p[..., quads[:, k], :] for k in range(4))
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1).sum(-1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdims=True) * b1
    angles = np.degrees(np.arctan2((np.cross(b1, v) * w).sum(-1), (v * w).sum(-1)))
    return np.where(angles <= -180.0, angles + 360.0, angles)


def _atom(residue, *names):
    for atom in residue.atoms():
        if atom.name in names:
            return atom.index
    return None


@dataclass
class PeptideObservables:
    """The torsions and macrostates of a peptide topology (see the module docstring).

    Parameters
    ----------
    topology : openmm.app.Topology

    Raises
    ------
    ValueError
        No residue has a backbone torsion (not a peptide).
    """

    topology: object
    torsions: List[Torsion] = field(init=False)
    residues: List[Residue] = field(init=False)

    def __post_init__(self):
        residues = list(self.topology.residues())
        torsions: List[Torsion] = []
        states: List[Residue] = []
        for k, residue in enumerate(residues):
            if residue.name in _CAPS:
                continue
            n, ca, c = _atom(residue, "N"), _atom(residue, "CA"), _atom(residue, "C")
            if None in (n, ca, c):
                continue
            label = f"{residue.name}{residue.id}"
            previous_c = _atom(residues[k - 1], "C") if k > 0 else None
            next_n = _atom(residues[k + 1], "N") if k + 1 < len(residues) else None
            phi = psi = None
            if previous_c is not None:
                phi = len(torsions)
                torsions.append(Torsion(f"phi{residue.id}", (previous_c, n, ca, c), k, "phi"))
            if next_n is not None:
                psi = len(torsions)
                torsions.append(Torsion(f"psi{residue.id}", (n, ca, c, next_n), k, "psi"))
            if residue.name not in _NO_CHI1 and residue.name not in ("PRO",):
                cb, xg = _atom(residue, "CB"), _atom(residue, _CHI1.get(residue.name, "CG"))
                if cb is not None and xg is not None:
                    torsions.append(Torsion(f"chi1_{residue.id}", (n, ca, cb, xg), k, "chi1"))
            if phi is not None and psi is not None and residue.name == "GLY":
                states.append(Residue(label, "glycine", phi, psi, ("beta", "alphaR", "alphaL")))
            elif psi is not None and (phi is None or residue.name == "PRO"):
                states.append(Residue(label, "psi", None, psi, ("alpha", "beta")))
            elif phi is not None and psi is None and residue.name == "GLY":
                states.append(Residue(label, "glycine_phi", phi, None, ("phi_negative", "phi_positive")))
            elif phi is not None and psi is None:
                states.append(Residue(label, "phi", phi, None, ("beta", "alphaR", "phi_positive")))
            elif phi is not None:
                states.append(Residue(label, "standard", phi, psi, ("beta", "alphaR", "phi_positive"),
                                      ("alphaL", "C7ax")))
        if not states:
            raise ValueError("the topology has no residue with a backbone torsion: not a peptide of standard residues.")
        self.torsions, self.residues = torsions, states

    @property
    def names(self) -> List[str]:
        return [t.name for t in self.torsions]

    @property
    def central(self) -> Residue:
        """The residue with both phi and psi nearest the middle of the chain (else the middle residue)."""
        both = [r for r in self.residues if r.phi is not None and r.psi is not None]
        pool = both or self.residues
        return pool[(len(pool) - 1) // 2]

    def biased_torsions(self) -> List[Tuple[int, int, int, int]]:
        """The torsions metadynamics biases: phi and psi of the :attr:`central` residue."""
        central = self.central
        return [self.torsions[i].atoms for i in (central.phi, central.psi) if i is not None]

    def quads(self) -> np.ndarray:
        return np.asarray([t.atoms for t in self.torsions], dtype=np.int64)

    def values(self, positions: np.ndarray) -> np.ndarray:
        """Torsions (degrees) of positions [N, 3] -> [T], or [F, N, 3] -> [F, T]."""
        return dihedrals(positions, self.quads())

    def state_names(self, extra: bool = False) -> List[str]:
        """``<residue>:<state>`` of every residue's partition (and, with ``extra``, its sub-regions)."""
        return [f"{r.label}:{s}" for r in self.residues for s in r.states + (r.extra_states if extra else ())]

    def indicators(self, values: np.ndarray, extra: bool = True) -> Dict[str, np.ndarray]:
        """Boolean indicator of every state for torsion rows [F, T] (see the module docstring)."""
        values = np.atleast_2d(values)
        out: Dict[str, np.ndarray] = {}
        for r in self.residues:
            phi = values[:, r.phi] if r.phi is not None else None
            psi = values[:, r.psi] if r.psi is not None else None
            regions = residue_regions(r.kind, phi, psi)
            for s in r.states + (r.extra_states if extra else ()):
                out[f"{r.label}:{s}"] = regions[s]
        return out

    def joint_labels(self, values: np.ndarray) -> np.ndarray:
        """The joint state of every row: residues' states joined by ``|`` (array of str)."""
        indicators = self.indicators(values, extra=False)
        values = np.atleast_2d(values)
        parts = []
        for r in self.residues:
            column = np.full(len(values), "?", dtype=object)
            for s in r.states:
                column[indicators[f"{r.label}:{s}"]] = s
            parts.append(column)
        return np.asarray(["|".join(row) for row in zip(*parts)], dtype=object)


def residue_regions(kind: str, phi: Optional[np.ndarray], psi: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
    """Boolean region arrays of one residue's torsions (degrees), by the residue's kind."""
    if kind == "psi":
        alpha = (psi >= -100.0) & (psi < 100.0)
        return {"alpha": alpha, "beta": ~alpha}
    positive = (phi >= 0.0) & (phi < (180.0 if kind in ("glycine_phi", "glycine") else 120.0))
    if kind == "glycine_phi":
        return {"phi_negative": ~positive, "phi_positive": positive}
    if kind == "phi":
        helical = (phi >= -90.0) & (phi < 0.0)
        return {"beta": ~positive & ~helical, "alphaR": helical, "phi_positive": positive}
    helical = (psi >= -100.0) & (psi < 100.0)
    if kind == "glycine":
        return {"beta": ~helical, "alphaR": helical & ~positive, "alphaL": helical & positive}
    return {"beta": ~positive & ~helical, "alphaR": ~positive & helical, "phi_positive": positive,
            "alphaL": positive & (psi >= -45.0), "C7ax": positive & (psi < -45.0)}


def weighted_populations(indicators: Dict[str, np.ndarray], log_weights: Optional[Sequence[float]] = None
                         ) -> Dict[str, float]:
    """Weighted fraction of samples in each state (equal weights without ``log_weights``)."""
    first = next(iter(indicators.values()))
    if log_weights is None or len(log_weights) == 0:
        weights = np.ones(len(first))
    else:
        lw = np.asarray(log_weights, dtype=float)
        weights = np.exp(lw - lw.max())
    total = weights.sum()
    return {name: float((weights * mask).sum() / total) if total > 0 else float("nan")
            for name, mask in indicators.items()}
