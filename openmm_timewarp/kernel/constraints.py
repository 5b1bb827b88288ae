"""Bond constraints: which bonds a flow holds, the checks made at bind, and the mass-metric term.

A System with constraints (``constraints=HBonds`` or ``AllBonds``) is sampled by constrained
dynamics on the manifold where every constrained bond has its length. A flow that can hold bonds
(``hold_bonds``, the internal-coordinate family: constrained bonds are Z-matrix bonds held at their
lengths) gives a density with respect to prod_k delta(|x_i - x_j| - d_k) dx; the measure
constrained dynamics samples is, with respect to the same measure,

    exp(-U(x) / kT) sqrt(det G_M(x)),   G_M[k, l] = sum_a (1/m_a) grad_a sigma_k . grad_a sigma_l,

so the density the MH rule uses is log q - 0.5 log det G_M(x), on both sides
(``docs/constraints.md``). :class:`Holds` computes the term; :func:`bind_constraints` checks a
System's constraints against the flow and hands them to it.
"""

import warnings
import weakref
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from openmm import unit

# How much a kind of constraint set holds: a model may hold more than it was made for, never less.
LEVELS = {"none": 0, "hbonds": 1, "allbonds": 2}
_UNCONSTRAINED = ("Create the System with createSystem(..., constraints=None) and use a 1 fs step, or add "
                  "hydrogenMass=3*amu and use 2 fs")
_HYDROGEN = 1
_applied: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # flow -> the Holds it holds now


@dataclass(frozen=True)
class Holds:
    """The constrained bonds of a bound System, in the model's atom order, and their metric.

    Attributes
    ----------
    pairs : Tensor [K, 2] int64
    lengths : Tensor [K] float32 (nm)
    coupling : Tensor [K, K] float64
        sum_a s_k(a) s_l(a) / m_a (amu^-1), s_k(a) = +1 for the bond's second atom, -1 for its first:
        G_M(x) is this times the Gram matrix of the bonds' unit vectors (second minus first atom).
    kind : str
        "hbonds" (every constraint involves a hydrogen) or "allbonds".
    """

    pairs: torch.Tensor
    lengths: torch.Tensor
    coupling: torch.Tensor
    kind: str

    def half_log_det_metric(self, x: torch.Tensor) -> torch.Tensor:
        """0.5 log det G_M(x) per row of positions x [B, N, 3] (model order), float64 [B]."""
        x = x.double()
        d = x[:, self.pairs[:, 1]] - x[:, self.pairs[:, 0]]
        u = d / torch.linalg.norm(d, dim=-1, keepdim=True)
        gram = self.coupling * (u @ u.transpose(-1, -2))
        return 0.5 * torch.linalg.slogdet(gram)[1]


def metric_coupling(pairs: np.ndarray, masses: np.ndarray) -> torch.Tensor:
    """The constant factor of G_M: sum over atoms a of s_k(a) s_l(a) / m_a for bonds k, l (see :class:`Holds`)."""
    k = len(pairs)
    signs = np.zeros((k, len(masses)))
    signs[np.arange(k), pairs[:, 0]] = -1.0
    signs[np.arange(k), pairs[:, 1]] = 1.0
    return torch.as_tensor((signs / masses) @ signs.T, dtype=torch.float64)


def system_constraints(system) -> List[Tuple[int, int, float]]:
    """(i, j, length in nm) of every constraint of the System."""
    out = []
    for k in range(system.getNumConstraints()):
        i, j, length = system.getConstraintParameters(k)
        out.append((int(i), int(j), float(length.value_in_unit(unit.nanometer))))
    return out


def constraint_kind(constraints: Sequence[Tuple[int, int, float]], numbers: Sequence[int]) -> str:
    """"none", "hbonds" (each constraint involves a hydrogen) or "allbonds"."""
    if not constraints:
        return "none"
    return "hbonds" if all(_HYDROGEN in (numbers[i], numbers[j]) for i, j, _ in constraints) else "allbonds"


def _describe(k, i, j, length, names):
    def name(a):
        return f"{a} ({names[a]})" if names is not None else str(a)
    return f"constraint {k} (atoms {name(i)} and {name(j)}, {length:.4f} nm)"


def release(flow, info):
    """Let a flow that can hold bonds hold none (before matching atoms, or for an unconstrained System)."""
    if info.can_hold_bonds and _applied.get(flow, False) is not None:
        flow.hold_bonds(torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0))
        _applied[flow] = None


def ensure_held(flow, holds: Optional[Holds]):
    """Make the flow hold ``holds`` (None: nothing), as another kernel sharing the module may have changed them."""
    if _applied.get(flow) is holds:
        return
    if holds is None:
        flow.hold_bonds(torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0))
    else:
        flow.hold_bonds(holds.pairs, holds.lengths)
    _applied[flow] = holds


def _check_level(info, kind, count):
    """The model's ``constraints`` against the System's: holding more is allowed, less is an error."""
    if LEVELS[info.constraints] > LEVELS[kind]:
        raise ValueError(
            f"the flow {info.source} was made for constraints={info.constraints!r}, but the System has "
            f"{'no constraints' if kind == 'none' else f'{count} constraints of kind {kind!r}'}: its proposals "
            "keep those bonds near their constraint lengths, which the System lets vibrate. Create the System "
            f"with constraints={'HBonds' if info.constraints == 'hbonds' else 'AllBonds'}, or use a model made "
            "for this System's constraints (fit/train --constraints).")


def bind_constraints(flow, info, system, numbers, bonds, mapping, inverse, names=None) -> Optional[Holds]:
    """Check the System's constraints against the flow and make it hold them; None without constraints.

    Parameters
    ----------
    flow, info
        The flow and its :class:`~openmm_timewarp.contract.FlowInfo`.
    system : openmm.System
    numbers : sequence of int
        Atomic numbers (System order).
    bonds : sequence of (int, int)
        The System's bonds (System order).
    mapping, inverse : numpy.ndarray
        Model atom k is System atom ``mapping[k]``; System atom s is model atom ``inverse[s]``.
    names : list of str, optional
        Atom names for the messages (System order).

    Raises
    ------
    ValueError
        A constraint between atoms that are not bonded (``HAngles``, a distance constraint), a flow
        that cannot hold bonds (a Cartesian-family model), a constrained bond that is not a Z-matrix
        bond of the model (a ring closure under ``AllBonds``), or a model made for more constraints
        than the System has.
    """
    constraints = system_constraints(system)
    kind = constraint_kind(constraints, numbers)
    _check_level(info, kind, len(constraints))
    if not constraints:
        release(flow, info)
        return None
    bonded = {frozenset(b) for b in bonds}
    for k, (i, j, length) in enumerate(constraints):
        if frozenset((i, j)) not in bonded:
            raise ValueError(
                f"the System's {_describe(k, i, j, length, names)} is not a bond: angle constraints "
                "(constraints=HAngles) and distance constraints between atoms that are not bonded cannot be held "
                "by a Timewarp proposal. Use constraints=HBonds (or AllBonds), or " + _UNCONSTRAINED[0].lower()
                + _UNCONSTRAINED[1:] + ".")
    if not info.can_hold_bonds:
        i, j, length = constraints[0]
        raise ValueError(
            f"the System has {len(constraints)} constraints (first: {_describe(0, i, j, length, names)}), but the "
            f"flow {info.source} cannot hold bonds fixed (it has no hold_bonds method, as Cartesian-family models): "
            "its proposals move every atom freely and would break the constraints. " + _UNCONSTRAINED
            + "; or use an internal-coordinate model (fit --family internal), which holds constrained bonds.")
    holdable = {frozenset(b) for b in info.holdable_bonds}
    pairs = np.array([[inverse[i], inverse[j]] for i, j, _ in constraints], dtype=np.int64)
    for k, (a, b) in enumerate(pairs):
        if frozenset((int(a), int(b))) not in holdable:
            i, j, length = constraints[k]
            raise ValueError(
                f"the System's {_describe(k, i, j, length, names)} is a bond that the flow {info.source} does not "
                "place directly (not a Z-matrix bond: a ring closure, as under constraints=AllBonds), so it cannot "
                "be held exactly. Use constraints=HBonds, or " + _UNCONSTRAINED[0].lower() + _UNCONSTRAINED[1:] + ".")
    if LEVELS[info.constraints] < LEVELS[kind] and info.constraints != "none":
        warnings.warn(f"the flow {info.source} was made for constraints={info.constraints!r}; the System has "
                      f"{kind!r}: the extra bonds are held (exact), acceptance may drop.", RuntimeWarning,
                      stacklevel=3)
    masses = np.array([system.getParticleMass(int(s)).value_in_unit(unit.dalton) for s in mapping])
    holds = Holds(pairs=torch.as_tensor(pairs), lengths=torch.tensor([c[2] for c in constraints], dtype=torch.float32),
                  coupling=metric_coupling(pairs, masses), kind=kind)
    ensure_held(flow, holds)
    return holds
