"""The packaged alanine-dipeptide reference: populations, errors, state definitions, histogram.

``alanine_dipeptide_reference.json`` (next to this module) holds the 310 K parallel-tempering
reference ensemble of alanine dipeptide (ACE-ALA-NME, amber99sbildn + OBC implicit solvent, no
constraints): state populations with block standard errors, free energies relative to beta/C7eq,
the state definitions, and a 72 x 72 periodic (phi, psi) histogram of counts. Its ``provenance``
entry says where the numbers come from. :func:`build_reference` regenerates it from the reference
data set's files (given explicitly; nothing is read from a fixed path at run time).
"""

import json
from pathlib import Path

import numpy as np

from .divergence import torsion_histogram
from .landscape import rebin
from .populations import state_populations
from .states import REGION_NAMES

PACKAGED_REFERENCE = Path(__file__).with_name("alanine_dipeptide_reference.json")


def load_reference(path=None):
    """Read a reference JSON file (default: the packaged alanine-dipeptide reference).

    Parameters
    ----------
    path : str or path-like, optional

    Returns
    -------
    dict
        With ``populations``, ``populations_stderr`` (state -> float), ``free_energy_kT``,
        ``states`` (definitions), ``phi_psi_histogram`` and ``provenance``.
    """
    with open(PACKAGED_REFERENCE if path is None else path, encoding="utf-8") as handle:
        return json.load(handle)


def reference_histogram(reference, bins=36):
    """The reference (phi, psi) histogram on a ``bins`` x ``bins`` periodic grid.

    Parameters
    ----------
    reference : dict
        From :func:`load_reference`.
    bins : int
        Bins per angle; must divide the stored resolution.

    Returns
    -------
    numpy.ndarray of int, shape (bins, bins)
        Counts; rows phi, columns psi, as :func:`.divergence.torsion_histogram`.
    """
    counts = np.asarray(reference["phi_psi_histogram"]["counts"], dtype=np.int64)
    stored = counts.shape[0]
    if stored % bins:
        raise ValueError(f"the reference histogram has {stored} bins per angle; {bins} does not divide it")
    return rebin(counts, stored // bins)


def build_reference(directory, bins=72, block_ps=2000.0):
    """Build the reference dictionary from the reference data set's files.

    Parameters
    ----------
    directory : str or path-like
        Folder holding ``summary.json`` (per-run sample counts) and ``pt_310K_phi_psi.npz``
        (``phi``, ``psi`` in degrees of the concatenated parallel-tempering runs,
        ``sample_interval_ps``).
    bins : int
        Histogram bins per angle.
    block_ps : float
        Block length for the standard errors (blocks never straddle two runs).

    Returns
    -------
    dict
        Ready for ``json.dump``; the format :func:`load_reference` reads.
    """
    directory = Path(directory)
    with open(directory / "summary.json", encoding="utf-8") as handle:
        summary = json.load(handle)
    with np.load(directory / "pt_310K_phi_psi.npz") as data:
        phi = np.asarray(data["phi"], dtype=float)
        psi = np.asarray(data["psi"], dtype=float)
        interval = float(data["sample_interval_ps"])
    runs = sorted(name for name, run in summary["runs"].items() if run["kind"] == "PT")
    lengths = [summary["runs"][name]["samples"] for name in runs]
    if sum(lengths) != len(phi):
        raise ValueError(f"run lengths sum to {sum(lengths)}, the data hold {len(phi)} samples")
    edges = np.cumsum([0] + lengths)
    chains_phi = [phi[a:b] for a, b in zip(edges[:-1], edges[1:])]
    chains_psi = [psi[a:b] for a, b in zip(edges[:-1], edges[1:])]
    block_size = int(round(block_ps / interval))
    stats = state_populations(chains_phi, chains_psi, block_size=block_size, names=REGION_NAMES)
    return {
        "system": "alanine dipeptide (ACE-ALA-NME, 22 atoms), amber99sbildn.xml + amber99_obc.xml, NoCutoff, "
                  "no constraints, 310 K",
        "temperature_K": 310.0,
        "angles": summary["states"]["angles"],
        "states": {k: v for k, v in summary["states"].items() if k != "angles"},
        "populations": stats["populations"],
        "populations_stderr": stats["populations_stderr"],
        "free_energy_kT": {k: v + 0.0 for k, v in stats["free_energy_kT"].items()},
        "free_energy_kT_stderr": stats["free_energy_kT_stderr"],
        "relative_to": stats["relative_to"],
        "num_samples": stats["num_samples"],
        "sample_interval_ps": interval,
        "time_ns": stats["num_samples"] * interval / 1000.0,
        "phi_psi_histogram": {
            "bins": bins,
            "range_deg": [-180.0, 180.0],
            "periodic": True,
            "layout": "counts[i][j]: phi bin i, psi bin j; bin k covers [-180 + k*w, -180 + (k+1)*w), w = 360/bins",
            "counts": torsion_histogram(phi, psi, bins).tolist(),
        },
        "provenance": {
            "source": "alanine-dipeptide 310 K reference data set: summary.json and pt_310K_phi_psi.npz",
            "method": f"parallel tempering, 8 replicas at geometric temperatures 310-600 K, swaps every 0.5 ps; "
                      f"{len(runs)} independent runs ({', '.join(runs)}), first 1 ns of each discarded; "
                      f"{stats['num_samples']} samples at 310 K, one every {interval:g} ps",
            "standard_errors": f"block averaging with {block_ps / 1000:g} ns blocks within each run "
                               f"({stats['num_blocks']} blocks); free-energy errors by the delta method "
                               "from the block-mean covariance",
            "note": "populations and the four state errors equal the data set's summary.json; phi_positive's "
                    "error is computed from the same blocks (the data set's README quotes 0.0023, the "
                    "alphaL and C7ax errors added in quadrature)",
        },
    }


def write_reference(reference, path):
    """Write a reference dictionary as JSON, one histogram row per line.

    Parameters
    ----------
    reference : dict
        From :func:`build_reference`.
    path : str or path-like
    """
    reference = dict(reference)
    histogram = dict(reference.pop("phi_psi_histogram"))
    counts = histogram.pop("counts")
    body = json.dumps(reference, indent=1)[:-2]
    header = json.dumps(histogram, indent=1).replace("\n", "\n ")[:-3]
    rows = ",\n   ".join(json.dumps([int(c) for c in row], separators=(",", ":")) for row in counts)
    text = f'{body},\n "phi_psi_histogram": {header},\n  "counts": [\n   {rows}\n  ]\n }}\n}}\n'
    json.loads(text)  # the hand-made layout must stay valid JSON
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
