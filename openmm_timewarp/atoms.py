"""What the integrator needs to know about the molecule: atomic numbers and bonds."""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
from typing import List, Optional, Tuple

import openmm
from openmm import app

# Tolerance (amu) when recognising an element from a particle mass.
_MASS_TOLERANCE = 0.05


def atomic_numbers(system: openmm.System, topology: Optional[app.Topology] = None) -> List[int]:
    """Atomic number of every particle, from ``topology`` or, failing that, from the masses.

    Virtual sites and massless particles get 0.

    Raises
    ------
    ValueError
        The topology does not match the System, or a mass identifies no element or several
        (for example after hydrogen mass repartitioning): pass ``topology=``.
    """
    n = system.getNumParticles()
    if topology is not None:
        atoms = list(topology.atoms())
        if len(atoms) != n:
            raise ValueError(f"topology has {len(atoms)} atoms but the System has {n} particles.")
        return [atom.element.atomic_number if atom.element is not None else 0 for atom in atoms]
    elements = [e for e in app.element.Element._elements_by_symbol.values() if e.mass is not None]
    numbers = []
    for i in range(n):
        mass = system.getParticleMass(i).value_in_unit(openmm.unit.dalton)
        if mass == 0.0 or system.isVirtualSite(i):
            numbers.append(0)
            continue
        matches = {e.atomic_number for e in elements if abs(e.mass.value_in_unit(openmm.unit.dalton) - mass) < _MASS_TOLERANCE}
        if len(matches) != 1:
            raise ValueError(
                f"cannot tell the element of particle {i} from its mass ({mass:.4f} amu"
                f"{', hydrogen mass repartitioning?' if 1.5 < mass < 5 else ''}). "
                "Pass topology= (for example simulation.topology) to TimewarpIntegrator."
            )
        numbers.append(matches.pop())
    return numbers


def bonds(system: openmm.System, topology: Optional[app.Topology] = None) -> List[Tuple[int, int]]:
    """Bonded pairs, from ``topology`` if it has bonds, else from the System's bond forces and constraints.

    ``createSystem`` leaves constrained bonds out of the bond force, so without a topology a
    constraint counts as a bond unless it is an angle constraint (as ``constraints=HAngles`` adds
    between the hydrogens of a methyl, or a hydroxyl hydrogen and the atom beyond the oxygen): the
    longest side of a triangle of bonds and constraints (bond-force sides count as shortest).
    """
    if topology is not None and topology.getNumBonds() > 0:
        return [(b[0].index, b[1].index) for b in topology.bonds()]
    pairs = []
    for force in system.getForces():
        if isinstance(force, (openmm.HarmonicBondForce, openmm.CustomBondForce)):
            for k in range(force.getNumBonds()):
                i, j = force.getBondParameters(k)[:2]
                pairs.append((i, j))
    length = {frozenset(p): 0.0 for p in pairs}
    constrained = []
    for k in range(system.getNumConstraints()):
        i, j, d = system.getConstraintParameters(k)
        constrained.append((i, j))
        length.setdefault(frozenset((i, j)), d.value_in_unit(openmm.unit.nanometer))
    neighbours = {}
    for edge in length:
        i, j = tuple(edge)
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
    known = {frozenset(p) for p in pairs}
    for i, j in constrained:
        edge = frozenset((i, j))
        if edge in known:
            continue
        shared = (neighbours[i] - {j}) & (neighbours[j] - {i})
        if not any(length[edge] > max(length[frozenset((i, k))], length[frozenset((j, k))]) for k in shared):
            pairs.append((i, j))
            known.add(edge)
    return pairs
