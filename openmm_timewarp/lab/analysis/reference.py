"""References: the equilibrium a sampler must reproduce, for any peptide.

A reference holds, for one molecule at one temperature, the population of every macrostate of
:mod:`.peptide` (per residue, and joint) with its standard error, and a (phi, psi) histogram of
every residue. ``openmm-timewarp reference`` makes one by long replica exchange; the package
ships the alanine-dipeptide one (``alanine_dipeptide_reference.json``, from 45.9 ns of 310 K
parallel tempering; :func:`alanine_dipeptide_reference_from_data` regenerates it). The benchmark
and ``analyze`` read them with :func:`load_reference`.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .._resumable import atomic_write
from .divergence import torsion_histogram
from .estimates import state_estimates
from .peptide import PeptideObservables

FORMAT = "openmm-timewarp-reference"
VERSION = 2
PACKAGED_REFERENCE = Path(__file__).with_name("alanine_dipeptide_reference.json")
REFERENCE_FILE = "reference.json"
HISTOGRAM_BINS = 72


@dataclass
class Reference:
    """Populations of a molecule's macrostates, with errors, and its Ramachandran histograms.

    Attributes
    ----------
    molecule : str
    temperature_K : float
    preset : str
    states : dict
        ``<residue>:<state>`` -> {"population", "stderr"} (partition states and sub-regions).
    joint_states : dict
        Joint state label -> {"population", "stderr"} (peptides with more than one residue).
    histograms : dict
        Residue label -> counts [bins, bins] (rows phi, columns psi; :func:`.divergence.torsion_histogram`).
    num_samples : int
    simulated_ns : float
        Simulated time at the reference temperature.
    provenance : dict
        How it was made.
    """

    molecule: str
    temperature_K: float
    preset: str
    states: Dict[str, Dict[str, float]]
    joint_states: Dict[str, Dict[str, float]] = field(default_factory=dict)
    histograms: Dict[str, np.ndarray] = field(default_factory=dict)
    num_samples: int = 0
    simulated_ns: float = 0.0
    provenance: Dict[str, Any] = field(default_factory=dict)

    def population(self, state: str) -> float:
        return self.states[state]["population"]

    def stderr(self, state: str) -> float:
        return self.states[state]["stderr"]

    def checked_states(self, observables: PeptideObservables, threshold: float = 0.01) -> List[str]:
        """The partition states whose population is at least ``threshold`` (the ones accuracy is judged on)."""
        return [s for s in observables.state_names() if s in self.states and self.population(s) >= threshold]

    def histogram(self, residue: str, bins: int = 36) -> Optional[np.ndarray]:
        """A residue's (phi, psi) counts rebinned to ``bins`` per angle (None if absent)."""
        counts = self.histograms.get(residue)
        if counts is None:
            return None
        factor = counts.shape[0] // bins
        if factor * bins != counts.shape[0]:
            raise ValueError(f"{counts.shape[0]} reference bins per angle cannot be rebinned to {bins}.")
        return counts.reshape(bins, factor, bins, factor).sum(axis=(1, 3))

    def to_json(self) -> Dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "molecule": self.molecule, "temperature_K": self.temperature_K,
                "preset": self.preset, "num_samples": self.num_samples, "simulated_ns": self.simulated_ns,
                "provenance": self.provenance, "states": self.states, "joint_states": self.joint_states,
                "histograms": {k: {"bins": int(v.shape[0]), "counts": v.astype(int).tolist()}
                               for k, v in self.histograms.items()}}


def load_reference(path=None) -> Reference:
    """Read a reference: a ``reference.json`` file or a folder holding one (default: the packaged alanine dipeptide).

    Raises
    ------
    FileNotFoundError, ValueError
        No such file, or not a reference (the message says how to make one).
    """
    path = PACKAGED_REFERENCE if path is None else Path(path)
    if path.is_dir():
        path = path / REFERENCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no reference at {str(path)!r}; make one with 'openmm-timewarp reference'.")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not an openmm-timewarp reference (format {FORMAT}).")
    histograms = {k: np.asarray(v["counts"], dtype=np.int64) for k, v in data.get("histograms", {}).items()}
    return Reference(data["molecule"], float(data["temperature_K"]), data.get("preset", ""), data["states"],
                     data.get("joint_states", {}), histograms, int(data.get("num_samples", 0)),
                     float(data.get("simulated_ns", 0.0)), data.get("provenance", {}))


def save_reference(reference: Reference, path) -> None:
    """Write a reference as JSON (atomically)."""
    path = Path(path)
    if path.is_dir():
        path = path / REFERENCE_FILE
    atomic_write(path, json.dumps(reference.to_json(), indent=1) + "\n")


def _weights_summing_to(total: float, log_weights) -> np.ndarray:
    log_weights = np.asarray(log_weights, dtype=float)
    w = np.exp(log_weights - log_weights.max())
    return w * (total / w.sum())


def reference_from_samples(observables: PeptideObservables, values: np.ndarray, *, molecule: str,
                           temperature_K: float, preset: str, lengths: Optional[Sequence[int]] = None,
                           log_weights: Optional[np.ndarray] = None, num_blocks: int = 10,
                           simulated_ns: float = 0.0, provenance: Optional[Dict[str, Any]] = None) -> Reference:
    """A reference from torsion samples [n, T] (chains concatenated, ``lengths`` each).

    Standard errors come from ``num_blocks`` blocks per chain (:mod:`.estimates`); ``log_weights``
    reweight the samples (for example MBAR weights of every replica at the reference temperature).
    """
    indicators = observables.indicators(values, extra=True)
    states = {k: {"population": v["population"], "stderr": v["stderr"]}
              for k, v in state_estimates(indicators, log_weights, lengths, num_blocks).items()}
    joint = {}
    if len(observables.residues) > 1:
        labels = observables.joint_labels(values)
        joint_indicators = {label: labels == label for label in sorted(set(labels))}
        joint = {k: {"population": v["population"], "stderr": v["stderr"]}
                 for k, v in state_estimates(joint_indicators, log_weights, lengths, num_blocks).items()}
    # with weights: weighted counts scaled to the number of samples (stored rounded, as counts)
    weights = None if log_weights is None else _weights_summing_to(len(values), log_weights)
    histograms = {}
    for residue in observables.residues:
        if residue.phi is not None and residue.psi is not None:
            counts = torsion_histogram(values[:, residue.phi], values[:, residue.psi], HISTOGRAM_BINS, weights)
            histograms[residue.label] = np.rint(counts).astype(np.int64)
    return Reference(molecule, float(temperature_K), preset, states, joint, histograms, int(len(values)),
                     float(simulated_ns), dict(provenance or {}))


def alanine_dipeptide_reference_from_data(directory) -> Reference:
    """The packaged alanine-dipeptide reference, rebuilt from the reference data set's files.

    ``directory`` holds ``summary.json`` (per-run sample counts) and ``pt_310K_phi_psi.npz`` (phi,
    psi of the concatenated parallel-tempering runs at 310 K). Standard errors from 2 ns blocks of
    every run.
    """
    from .. import systems

    directory = Path(directory)
    summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    with np.load(directory / "pt_310K_phi_psi.npz") as data:
        values = np.stack([data["phi"], data["psi"]], axis=-1).astype(float)
        interval = float(data["sample_interval_ps"])
    runs = sorted(name for name, run in summary["runs"].items() if run["kind"] == "PT")
    lengths = [summary["runs"][name]["samples"] for name in runs]
    blocks = max(1, int(round(min(lengths) * interval / 2000.0)))
    topology, _ = systems.load_alanine_dipeptide()
    reference = reference_from_samples(
        PeptideObservables(topology), values, molecule="ACE-A-NME", temperature_K=310.0, preset="amber99sbildn-obc",
        lengths=lengths, num_blocks=blocks, simulated_ns=len(values) * interval / 1000.0,
        provenance={"source": "alanine-dipeptide 310 K reference data set (summary.json, pt_310K_phi_psi.npz)",
                    "method": f"parallel tempering, 8 replicas at geometric temperatures 310-600 K, swaps every 0.5 ps; "
                              f"{len(runs)} independent runs ({', '.join(runs)}), first 1 ns of each discarded; one "
                              f"sample every {interval:g} ps at 310 K",
                    "standard_errors": "the data set's published ones (2 ns blocks of all runs); phi_positive's is "
                                       "alphaL's and C7ax's in quadrature, as the data set's README gives it"})
    published = summary["populations_stderr"]
    names = {"beta_C7eq": "beta", "alphaR": "alphaR", "alphaL": "alphaL", "C7ax": "C7ax"}
    for old, new in names.items():
        reference.states[f"ALA2:{new}"]["stderr"] = float(published[old])
    reference.states["ALA2:phi_positive"]["stderr"] = float(np.hypot(published["alphaL"], published["C7ax"]))
    return reference
