"""Heavy-atom ACE-(ALA)n-NME models with prescribed backbone torsions, for the analysis tests.

``peptide(phi, psi)`` and ``dipeptide(phi, psi)`` build coordinates (nm) by placing atoms from bond
lengths, angles and torsions, so the phi/psi that mdtraj and :class:`PeptideObservables` measure
are known exactly.
"""


import numpy as np
import pytest

from openmm_timewarp.lab.analysis import PeptideObservables, dihedrals, torsions_from_positions

from geometry import dihedral_degrees

BOND = 0.15  # nm
ANGLE = np.radians(111.0)
# bonds inside each residue type
RESIDUE_BONDS = {"ACE": [("CH3", "C"), ("C", "O")], "ALA": [("N", "CA"), ("CA", "C"), ("C", "O"), ("CA", "CB")],
                 "NME": [("N", "C")]}


def place(a, b, c, torsion_deg, bond=BOND, angle=ANGLE):
    """Position d with |cd| = bond, angle(b, c, d) = angle and dihedral(a, b, c, d) = torsion (per frame)."""
    chi = np.radians(np.asarray(torsion_deg, dtype=float))[..., None]
    bc = c - b
    bc /= np.linalg.norm(bc, axis=-1, keepdims=True)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    m = np.cross(n, bc)
    return c + bond * (-np.cos(angle) * bc + np.sin(angle) * np.cos(chi) * m + np.sin(angle) * np.sin(chi) * n)


def peptide_atoms(num_residues):
    """(residue index, residue name, atom name, element) of ACE-(ALA)n-NME, heavy atoms only."""
    atoms = [(0, "ACE", "CH3", "C"), (0, "ACE", "C", "C"), (0, "ACE", "O", "O")]
    for r in range(1, num_residues + 1):
        atoms += [(r, "ALA", "N", "N"), (r, "ALA", "CA", "C"), (r, "ALA", "C", "C"), (r, "ALA", "O", "O"),
                  (r, "ALA", "CB", "C")]
    return atoms + [(num_residues + 1, "NME", "N", "N"), (num_residues + 1, "NME", "C", "C")]


def peptide(phi, psi):
    """Coordinates (n_frames, n_atoms, 3) in nm of ACE-(ALA)n-NME; phi, psi of shape (n_frames, n) in degrees."""
    phi = np.atleast_2d(np.asarray(phi, dtype=float))
    psi = np.atleast_2d(np.asarray(psi, dtype=float))
    frames, count = phi.shape
    ch3 = np.zeros((frames, 3))
    c_prev = np.tile([BOND, 0.0, 0.0], (frames, 1))
    n_atom = np.tile([BOND - BOND * np.cos(ANGLE), BOND * np.sin(ANGLE), 0.0], (frames, 1))
    out = [ch3, c_prev, place(n_atom, ch3, c_prev, 180.0, bond=0.123, angle=np.radians(121.0))]
    before = ch3  # atom before c_prev along the chain
    for r in range(count):
        ca = place(before, c_prev, n_atom, 180.0)  # omega
        c = place(c_prev, n_atom, ca, phi[:, r])
        n_next = place(n_atom, ca, c, psi[:, r])
        out += [n_atom, ca, c, place(n_next, ca, c, psi[:, r] + 180.0, bond=0.123, angle=np.radians(121.0)),
                place(c, n_atom, ca, phi[:, r] + 120.0)]
        before, c_prev, n_atom = ca, c, n_next
    out += [n_atom, place(before, c_prev, n_atom, 180.0)]
    return np.stack(out, axis=1)


def dipeptide(phi, psi):
    """Coordinates (n_frames, 10, 3) in nm of ACE-ALA-NME with the given phi, psi (degrees, arrays)."""
    return peptide(np.reshape(phi, (-1, 1)), np.reshape(psi, (-1, 1)))


def peptide_topology(num_residues=1):
    """mdtraj Topology of ACE-(ALA)n-NME (one chain, heavy atoms, backbone bonds)."""
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    residues, atoms = {}, {}
    for index, name, atom, element in peptide_atoms(num_residues):
        if index not in residues:
            residues[index] = top.add_residue(name, chain)
        atoms[(index, atom)] = top.add_atom(atom, mdtraj.element.get_by_symbol(element), residues[index])
    for index, residue in residues.items():
        for a, b in RESIDUE_BONDS[residue.name]:
            top.add_bond(atoms[(index, a)], atoms[(index, b)])
        if index > 0:  # peptide bond to the previous residue
            top.add_bond(atoms[(index - 1, "C")], atoms[(index, "N")])
    return top


def dipeptide_topology():
    """mdtraj Topology of the ACE-ALA-NME model."""
    return peptide_topology(1)


def dipeptide_trajectory(phi, psi):
    """mdtraj Trajectory of the ACE-ALA-NME model."""
    import mdtraj

    return mdtraj.Trajectory(dipeptide(phi, psi).astype(np.float32), dipeptide_topology())


def test_model_bond_lengths():
    xyz = dipeptide([-60.0, 70.0], [140.0, -30.0])
    for i, j in [(0, 1), (1, 3), (3, 4), (4, 5), (5, 8), (8, 9), (4, 7)]:
        assert np.allclose(np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1), BOND)


def test_model_dihedral_sign_matches_mdtraj():
    mdtraj = pytest.importorskip("mdtraj")
    trajectory = dipeptide_trajectory([-75.0, 60.0], [150.0, -40.0])
    phi = np.degrees(mdtraj.compute_dihedrals(trajectory, [[1, 3, 4, 5]])[:, 0])
    assert np.allclose(phi, [-75.0, 60.0], atol=1e-3)


def test_longer_peptide_torsions():
    mdtraj = pytest.importorskip("mdtraj")
    from openmm_timewarp.lab.analysis import backbone_torsions, residue_torsions

    phi = np.array([[-60.0, -120.0, 55.0], [-80.0, 70.0, -150.0]])
    psi = np.array([[-45.0, 130.0, 35.0], [150.0, -60.0, 160.0]])
    trajectory = mdtraj.Trajectory(peptide(phi, psi).astype(np.float32), peptide_topology(3))
    all_phi, all_psi = backbone_torsions(trajectory)
    assert np.allclose(all_phi, phi, atol=1e-3) and np.allclose(all_psi, psi, atol=1e-3)
    paired_phi, paired_psi = residue_torsions(trajectory)
    assert np.allclose(paired_phi, phi, atol=1e-3) and np.allclose(paired_psi, psi, atol=1e-3)


def test_peptide_observables_measure_the_prescribed_torsions():
    phi = np.array([[-60.0, -120.0, 55.0], [-80.0, 70.0, -150.0], [179.99, -179.99, 0.0]])
    psi = np.array([[-45.0, 130.0, 35.0], [150.0, -60.0, 160.0], [180.0, 90.0, -0.01]])
    observables = PeptideObservables(peptide_topology(3).to_openmm())
    assert observables.names == ["phi1", "psi1", "phi2", "psi2", "phi3", "psi3"]  # ALA has no chi1
    values = observables.values(peptide(phi, psi))
    assert values.shape == (3, 6)
    assert np.allclose(wrap(values[:, 0::2] - phi), 0.0, atol=1e-6)
    assert np.allclose(wrap(values[:, 1::2] - psi), 0.0, atol=1e-6)
    assert np.all((values > -180.0) & (values <= 180.0))
    assert observables.values(peptide(phi, psi)[0]).shape == (6,)


def wrap(degrees):
    return (np.asarray(degrees) + 180.0) % 360.0 - 180.0


def test_dihedrals_of_random_points():
    points = np.random.default_rng(3).normal(size=(5, 6, 3))
    quads = np.array([[0, 1, 2, 3], [5, 4, 3, 2], [1, 3, 0, 5]])
    measured = dihedrals(points, quads)
    assert measured.shape == (5, 3)
    for f in range(5):
        for q, quad in enumerate(quads):
            assert measured[f, q] == pytest.approx(dihedral_degrees(*points[f, quad]), abs=1e-9)


def test_torsions_of_the_alanine_dipeptide_structure():
    from openmm import app, unit

    from openmm_timewarp.lab import systems
    from openmm_timewarp.lab.analysis import load_trajectory

    path = systems.structure_path("alanine-dipeptide")
    pdb = app.PDBFile(path)
    index = {(a.residue.name, a.name): a.index for a in pdb.topology.atoms()}
    xyz = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    expected_phi = dihedral_degrees(*(xyz[index[k]] for k in [("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C")]))
    expected_psi = dihedral_degrees(*(xyz[index[k]] for k in [("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N")]))
    observables = PeptideObservables(pdb.topology)
    assert [r.label for r in observables.residues] == ["ALA2"]
    assert np.allclose(observables.values(xyz), [expected_phi, expected_psi], atol=1e-9)
    phi, psi = torsions_from_positions(pdb.positions, pdb.topology)
    assert phi.shape == (1, 1) and psi.shape == (1, 1)
    assert phi[0, 0] == pytest.approx(expected_phi, abs=1e-3) and psi[0, 0] == pytest.approx(expected_psi, abs=1e-3)
    from_file = observables.values(load_trajectory(path, path).xyz.astype(float))
    assert from_file[0] == pytest.approx([expected_phi, expected_psi], abs=1e-3)
