"""Analysis of sampling runs: torsions, metastable states, effective sample sizes, speed-ups, plots.

Only numpy and scipy are imported here; mdtraj and matplotlib are imported by the functions that
need them (torsions, TICA features, plots).
"""

from .autocorrelation import autocorrelation, effective_sample_size, integrated_autocorrelation_time
from .blocks import block_ess, block_means, block_standard_error
from .divergence import jensen_shannon_divergence, population_errors_kT, torsion_histogram, torsion_jsd
from .landscape import free_energy_from_counts
from .observables import dipeptide_observables, ess_summary
from .plots import ramachandran_plot, tica_plot
from .populations import compare_populations, missed_states, state_populations
from .reference import load_reference, reference_histogram
from .report import analyze_dipeptide, analyze_peptide
from .speedup import SpeedUp, first_visit_times, speed_up, speed_ups
from .states import REGION_NAMES, STATE_NAMES, assign_states, count_entries, phi_positive, state_indicators
from .tica import TicaModel, fit_tica, project, tica_features
from .torsions import (
    backbone_torsions,
    dipeptide_torsions,
    load_trajectory,
    residue_torsions,
    torsions_from_positions,
    trajectory_from_positions,
)

__all__ = [
    "REGION_NAMES",
    "STATE_NAMES",
    "SpeedUp",
    "TicaModel",
    "analyze_dipeptide",
    "analyze_peptide",
    "assign_states",
    "autocorrelation",
    "backbone_torsions",
    "block_ess",
    "block_means",
    "block_standard_error",
    "compare_populations",
    "count_entries",
    "dipeptide_observables",
    "dipeptide_torsions",
    "effective_sample_size",
    "ess_summary",
    "first_visit_times",
    "fit_tica",
    "free_energy_from_counts",
    "integrated_autocorrelation_time",
    "jensen_shannon_divergence",
    "load_reference",
    "load_trajectory",
    "missed_states",
    "phi_positive",
    "population_errors_kT",
    "project",
    "ramachandran_plot",
    "reference_histogram",
    "residue_torsions",
    "speed_up",
    "speed_ups",
    "state_indicators",
    "state_populations",
    "tica_features",
    "tica_plot",
    "torsion_histogram",
    "torsion_jsd",
    "torsions_from_positions",
    "trajectory_from_positions",
]
