"""Write the small-molecule fixtures of the tests: 1,2-dimethoxyethane (CHARMM36/CGenFF, vacuum).

``dme-system.xml`` (unconstrained), ``dme-hbonds-system.xml`` (bonds to hydrogen constrained) and
``dme.pdb`` (all-trans, minimised). Run from anywhere: ``python tests/data/small-molecule/make.py``.
"""

import os

import numpy as np
import openmm
from openmm import app, unit

HERE = os.path.dirname(os.path.abspath(__file__))
# atom, element, (parent, angle reference, torsion reference), bond nm, angle deg, torsion deg
ATOMS = [
    ("C1", "C", (None, None, None), 0.0, 0.0, 0.0),
    ("O2", "O", ("C1", None, None), 0.142, 0.0, 0.0),
    ("C3", "C", ("O2", "C1", None), 0.142, 112.0, 0.0),
    ("C4", "C", ("C3", "O2", "C1"), 0.152, 109.5, 180.0),
    ("O5", "O", ("C4", "C3", "O2"), 0.142, 109.5, 180.0),
    ("C6", "C", ("O5", "C4", "C3"), 0.142, 112.0, 180.0),
    ("H11", "H", ("C1", "O2", "C3"), 0.109, 109.5, 180.0),
    ("H12", "H", ("C1", "O2", "C3"), 0.109, 109.5, 60.0),
    ("H13", "H", ("C1", "O2", "C3"), 0.109, 109.5, -60.0),
    ("H31", "H", ("C3", "C4", "O5"), 0.109, 109.5, 60.0),
    ("H32", "H", ("C3", "C4", "O5"), 0.109, 109.5, -60.0),
    ("H41", "H", ("C4", "C3", "O2"), 0.109, 109.5, 60.0),
    ("H42", "H", ("C4", "C3", "O2"), 0.109, 109.5, -60.0),
    ("H61", "H", ("C6", "O5", "C4"), 0.109, 109.5, 180.0),
    ("H62", "H", ("C6", "O5", "C4"), 0.109, 109.5, 60.0),
    ("H63", "H", ("C6", "O5", "C4"), 0.109, 109.5, -60.0),
]
ORDER = ["C1", "H11", "H12", "H13", "O2", "C3", "H31", "H32", "C4", "H41", "H42", "O5", "C6", "H61", "H62", "H63"]


def place(a, b, c, bond, angle, torsion):
    """The atom at ``bond`` from c, ``angle`` b-c-new, ``torsion`` a-b-c-new (a, b may be None)."""
    if b is None:
        return c + np.array([bond, 0.0, 0.0])
    if a is None:
        a = b + np.array([0.0, 1.0, 0.0])
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    angle, torsion = np.radians(angle), np.radians(torsion)
    d = np.array([-bond * np.cos(angle), bond * np.sin(angle) * np.cos(torsion), bond * np.sin(angle) * np.sin(torsion)])
    return c + d[0] * bc + d[1] * m + d[2] * n


def main():
    xyz = {}
    for name, _, (parent, ref_angle, ref_torsion), bond, angle, torsion in ATOMS:
        if parent is None:
            xyz[name] = np.zeros(3)
            continue
        xyz[name] = place(xyz.get(ref_torsion), xyz.get(ref_angle), xyz[parent], bond, angle, torsion)
    elements = {name: element for name, element, *_ in ATOMS}
    topology = app.Topology()
    residue = topology.addResidue("DME", topology.addChain())
    atoms = {name: topology.addAtom(name, app.Element.getBySymbol(elements[name]), residue) for name in ORDER}
    for name, _, (parent, *_), *_ in ATOMS:
        if parent is not None:
            topology.addBond(atoms[name], atoms[parent])
    positions = np.array([xyz[name] for name in ORDER]) * unit.nanometer
    forcefield = app.ForceField("charmm36.xml")
    for constraints, filename in ((None, "dme-system.xml"), (app.HBonds, "dme-hbonds-system.xml")):
        system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=constraints)
        with open(os.path.join(HERE, filename), "w") as handle:
            handle.write(openmm.XmlSerializer.serialize(system))
        if constraints is None:
            context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            context.setPositions(positions)
            openmm.LocalEnergyMinimizer.minimize(context, 1e-3)
            minimised = context.getState(getPositions=True).getPositions()
    with open(os.path.join(HERE, "dme.pdb"), "w") as handle:
        app.PDBFile.writeFile(topology, minimised, handle)


if __name__ == "__main__":
    main()
