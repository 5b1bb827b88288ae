"""Analysis of sampling runs of any peptide: torsions, macrostates, populations with errors, ESS, plots.

Only numpy and scipy are imported here; mdtraj and matplotlib are imported by the functions that
need them (trajectory files, TICA features, plots).
"""

from .autocorrelation import autocorrelation, effective_sample_size, integrated_autocorrelation_time
from .blocks import block_ess, block_means, block_standard_error
from .divergence import jensen_shannon_divergence, population_errors_kT, torsion_histogram, torsion_jsd
from .estimates import log_ratio_error, state_estimates, weighted_estimate, z_score
from .landscape import free_energy_from_counts
from .peptide import PeptideObservables, dihedrals, weighted_populations
from .plots import ramachandran_plot, tica_plot
from .reference import Reference, load_reference, reference_from_samples, save_reference
from .states import StateFigures, first_visit, state_table
from .tica import TicaModel, fit_tica, project, tica_features
from .torsions import (
    backbone_torsions,
    dcd_frame_interval_ps,
    load_trajectory,
    residue_torsions,
    torsions_from_positions,
    trajectory_from_positions,
)

__all__ = [
    "PeptideObservables",
    "Reference",
    "StateFigures",
    "TicaModel",
    "autocorrelation",
    "backbone_torsions",
    "block_ess",
    "block_means",
    "block_standard_error",
    "dcd_frame_interval_ps",
    "dihedrals",
    "effective_sample_size",
    "first_visit",
    "fit_tica",
    "free_energy_from_counts",
    "integrated_autocorrelation_time",
    "jensen_shannon_divergence",
    "load_reference",
    "load_trajectory",
    "log_ratio_error",
    "population_errors_kT",
    "project",
    "ramachandran_plot",
    "reference_from_samples",
    "residue_torsions",
    "save_reference",
    "state_estimates",
    "state_table",
    "tica_features",
    "tica_plot",
    "torsion_histogram",
    "torsion_jsd",
    "torsions_from_positions",
    "trajectory_from_positions",
    "weighted_estimate",
    "weighted_populations",
    "z_score",
]
