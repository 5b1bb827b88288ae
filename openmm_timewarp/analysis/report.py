"""One run's analysis as a plain dictionary (JSON-ready with :func:`jsonable`) and as text tables."""

import math

import numpy as np

from .divergence import population_errors_kT, torsion_jsd
from .landscape import rebin
from .observables import angle_observables, dipeptide_observables, ess_summary
from .populations import compare_populations, default_block_size, missed_states, state_populations
from .speedup import first_visit_times
from .states import STATE_NAMES, assign_states, count_entries, phi_positive

JSD_BINS = 36


def analyze_dipeptide(phi, psi, sample_interval_ps, wall_s=None, block_size=None, reference=None,
                      reference_counts=None):
    """Populations, ESS, first visits and (optionally) agreement with a reference for alanine dipeptide.

    Parameters
    ----------
    phi, psi : array_like, shape (n,)
        Torsions in degrees of consecutive samples of one run.
    sample_interval_ps : float
        Simulated time between samples.
    wall_s : float, optional
        Wall-clock seconds of the run (adds ESS per second and first-visit wall times, assuming
        samples were produced at a steady rate).
    block_size : int, optional
        Block length in samples for error bars and block ESS; default a twentieth of the run.
    reference : dict, optional
        With ``populations`` and ``populations_stderr`` (e.g. from :func:`.reference.load_reference`).
    reference_counts : array_like, optional
        Reference (phi, psi) histogram on a periodic grid whose size is a multiple of 36, for the
        Jensen-Shannon divergence (36 x 36 bins, natural log).

    Returns
    -------
    dict
        ``samples``, ``sample_interval_ps``, ``time_ps``, ``wall_s``, ``populations`` (see
        :func:`.populations.state_populations`), ``entries_into_phi_positive``, ``first_visit_ps``,
        ``first_visit_wall_s``, ``ess`` (see :func:`.observables.ess_summary`) and, with a
        reference, ``reference`` (``comparison``, ``free_energy_error_kT``, ``missed_states``,
        ``jsd``).
    """
    phi = np.asarray(phi, dtype=float)
    psi = np.asarray(psi, dtype=float)
    n = len(phi)
    if block_size is None:
        block_size = default_block_size(n)
    populations = state_populations(phi, psi, block_size=block_size)
    labels = assign_states(phi, psi)
    report = {
        "samples": int(n),
        "sample_interval_ps": float(sample_interval_ps),
        "time_ps": float(n * sample_interval_ps),
        "wall_s": None if wall_s is None else float(wall_s),
        "populations": populations,
        "entries_into_phi_positive": count_entries(phi_positive(phi)),
        "first_visit_ps": first_visit_times(labels, sample_interval_ps, STATE_NAMES, offset=sample_interval_ps),
        "first_visit_wall_s": None if wall_s is None else first_visit_times(labels, wall_s / n, STATE_NAMES,
                                                                            offset=wall_s / n),
        "ess": ess_summary(dipeptide_observables(phi, psi), sample_interval_ps, wall_s, block_size),
    }
    if reference is not None:
        pops = populations["populations"]
        section = {
            "comparison": compare_populations(pops, populations["populations_stderr"], reference["populations"],
                                              reference.get("populations_stderr")),
            "free_energy_error_kT": population_errors_kT(pops, reference["populations"]),
            "missed_states": missed_states(pops, reference["populations"]),
        }
        if reference_counts is not None:
            counts = np.asarray(reference_counts)
            section["jsd"] = torsion_jsd(phi, psi, rebin(counts, counts.shape[0] // JSD_BINS))
            section["jsd_bins"] = JSD_BINS
        report["reference"] = section
    return report


def analyze_peptide(phi, psi, sample_interval_ps, wall_s=None, tics=None, block_size=None):
    """ESS of the torsions of every residue (and of TIC0/TIC1) for a peptide of any length.

    Parameters
    ----------
    phi, psi : array_like, shapes (n, n_phi) and (n, n_psi)
        Torsions in degrees (as from :func:`.torsions.backbone_torsions`).
    sample_interval_ps : float
    wall_s : float, optional
    tics : array_like, shape (n, >= 1), optional
        TICA projections; the first two get ``TIC0``, ``TIC1`` entries.
    block_size : int, optional
        Block length for block ESS of every observable.

    Returns
    -------
    dict
        ``samples``, ``time_ps``, ``wall_s`` and ``ess`` (see :func:`.observables.ess_summary`).
    """
    phi = np.asarray(phi, dtype=float)
    psi = np.asarray(psi, dtype=float)
    observables = {}
    for k in range(phi.shape[1]):
        observables.update(angle_observables(f"phi_{k}", phi[:, k]))
    for k in range(psi.shape[1]):
        observables.update(angle_observables(f"psi_{k}", psi[:, k]))
    if tics is not None:
        tics = np.asarray(tics, dtype=float)
        for k in range(min(2, tics.shape[1])):
            observables[f"TIC{k}"] = tics[:, k]
    n = len(phi)
    return {
        "samples": int(n),
        "sample_interval_ps": float(sample_interval_ps),
        "time_ps": float(n * sample_interval_ps),
        "wall_s": None if wall_s is None else float(wall_s),
        "ess": ess_summary(observables, sample_interval_ps, wall_s, block_size,
                           blocks_for="all" if block_size is not None else "indicators"),
    }


def jsonable(value):
    """Convert numpy scalars/arrays and non-finite floats into JSON-safe values.

    Non-finite floats become the strings "inf", "-inf" and "nan" (``float()`` reads them back).

    Parameters
    ----------
    value : object

    Returns
    -------
    object
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return value


def _fmt(value, spec=".4g"):
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def populations_table(report):
    """Text table of populations (and reference agreement, if present).

    Parameters
    ----------
    report : dict
        From :func:`analyze_dipeptide`.

    Returns
    -------
    str
    """
    pops = report["populations"]
    comparison = report.get("reference", {}).get("comparison", {})
    header = f"{'state':<13}{'p':>9}{'+-':>9}{'F/kT':>8}{'+-':>7}"
    if comparison:
        header += f"{'p_ref':>9}{'|ln p/pref|':>12}{'z':>7}"
    lines = [header]
    for name, p in pops["populations"].items():
        line = (f"{name:<13}{_fmt(p):>9}{_fmt(pops['populations_stderr'][name], '.2g'):>9}"
                f"{_fmt(pops['free_energy_kT'][name], '.2f'):>8}{_fmt(pops['free_energy_kT_stderr'][name], '.2f'):>7}")
        if name in comparison:
            c = comparison[name]
            line += f"{_fmt(c['reference']):>9}{_fmt(c['abs_log_ratio'], '.3f'):>12}{_fmt(c['z'], '.2f'):>7}"
        lines.append(line)
    return "\n".join(lines)


def ess_table(report):
    """Text table of autocorrelation times and ESS of every observable.

    Parameters
    ----------
    report : dict
        From :func:`analyze_dipeptide` or :func:`analyze_peptide`.

    Returns
    -------
    str
    """
    rows = report["ess"]
    per_s = report.get("wall_s") is not None
    header = f"{'observable':<24}{'tau/ps':>10}{'ESS':>10}{'ESS geyer':>11}{'ESS blocks':>11}"
    if per_s:
        header += f"{'ESS/s':>10}{'blocks/s':>10}"
    lines = [header]
    for name, e in rows.items():
        line = (f"{name:<24}{_fmt(e['iat_time'], '.3g'):>10}{_fmt(e['ess'], '.4g'):>10}"
                f"{_fmt(e['ess_geyer'], '.4g'):>11}{_fmt(e.get('ess_blocks'), '.4g'):>11}")
        if per_s:
            line += f"{_fmt(e.get('ess_per_s'), '.3g'):>10}{_fmt(e.get('ess_blocks_per_s'), '.3g'):>10}"
        lines.append(line)
    return "\n".join(lines)
