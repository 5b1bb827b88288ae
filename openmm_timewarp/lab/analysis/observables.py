"""Which torsions describe a molecule: a peptide's backbone and chi1, else its soft torsions.

Both kinds have one interface (``names``, ``quads``, ``values``, ``state_names``, ``indicators``,
``residues`` and ``biased_torsions``), so fitting, references and benchmarks take any molecule.
"""


def observables_of(topology):
    """The observables of a topology.

    Returns
    -------
    PeptideObservables or SoftTorsionObservables
        :class:`~openmm_timewarp.lab.analysis.peptide.PeptideObservables` for a peptide of standard
        residues (with or without caps), else every soft torsion of the bond graph
        (:class:`~openmm_timewarp.lab.analysis.soft_torsions.SoftTorsionObservables`).
    """
    from ..systems import sequence_of
    from .peptide import PeptideObservables
    from .soft_torsions import SoftTorsionObservables

    try:
        sequence_of(topology)
        return PeptideObservables(topology)
    except ValueError:
        return SoftTorsionObservables(topology)
