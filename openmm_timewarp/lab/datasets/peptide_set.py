"""Training data for a transferable model: many peptides, each explored and sampled as ``fit`` does.

The peptides and their roles come from a splits file (:data:`SPLITS_FILE`, made once by
:func:`make_splits` with a fixed seed and kept in the package):

==================  =====================================================================================
group               what it holds
==================  =====================================================================================
``2aa``             zwitterionic two-residue peptides, the train / validation / test split of the anchors
``capped``          ACE-(2 or 3 residues)-NME, train and validation: caps and length transfer
``4aa``             zwitterionic tetrapeptides, train and validation, and held-out ``test`` sequences
``capped1``         every ACE-X-NME, ``test`` only: a zero-shot check that no training set contains
==================  =====================================================================================

Per peptide (one core), scaled down from ``fit``: build and minimise it with the ``amber14-obc1``
preset at 310 K, explore it with a short replica exchange (310-600 K), choose seeds spread over
every backbone and chi1 torsion the exploration reached (half farthest-point, half from 310 K),
and run MD at 310 K from each seed. What the data must cover is every state of every residue
(beta, alphaR and phi > 0 where a residue has phi and psi; the rotamers of chi1), each with local
fluctuations at the target temperature: plain MD at 310 K enters phi > 0 about once per 100 ns, so
seeding, not MD length, is what puts rare states in a few nanoseconds of data. The proposal is
corrected by Metropolis-Hastings; over-represented rare states cost nothing in exactness.

Each peptide is packed into ``OUTPUT/<name>.npz`` (a few hundred kB): positions every
``save_interval_ps`` as int16 in units of :data:`POSITION_SCALE_NM` about each frame's centroid
(0.001 Angstrom resolution), which seed run each frame came from, the structure as PDB text, and a
JSON record (settings, frames, time per stage, the population of every state in the data). The
scratch folders (exploration, seeds, MD runs) live under ``--scratch`` and can be deleted once a
peptide is packed. A peptide with a packed file is done; one without resumes its fit stages.
``--shard i/n`` takes every n-th peptide of the fixed order, so that machines can split the work.
"""

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ... import __version__
from .._resumable import atomic_write, check_settings, read_json, write_json_atomic

SPLITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peptide_splits.json")
POSITION_SCALE_NM = 1e-4
PRESET = "amber14-obc1"
TEMPERATURE_K = 310.0
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
GROUPS = ("2aa", "capped", "4aa", "capped1")


@dataclass(frozen=True)
class PeptideSpec:
    """One peptide of the set: its one-letter sequence, termini, group and split."""

    sequence: str
    capped: bool
    group: str
    split: str

    @property
    def name(self) -> str:
        return f"ACE-{self.sequence}-NME" if self.capped else self.sequence


@dataclass(frozen=True)
class PeptideDataSettings:
    """What each peptide gets (times per peptide on one core).

    Attributes
    ----------
    explore_s : float
        Seconds of replica exchange before seeding.
    seeds_2aa, seeds_capped, seeds_4aa : int
        MD runs from seeds, by group; validation peptides get a quarter as many (at least 4).
    built_seeds : int
        Of those, seeds built in chosen backbone states (at most half; see
        :func:`openmm_timewarp.lab.fit.built_structures`): a 90 s exploration at 600 K rarely reaches
        phi > 0 of a non-glycine residue, which the proposal must still cover.
    equilibration_ps, production_ps, save_interval_ps : float
        MD per seed. A frame every 2 ps (1,200 frames of a 16-seed peptide, ~250 kB packed): bonds and
        angles decorrelate within a picosecond, so frames the MD makes anyway are kept for the
        geometry the proposal must model; 10 ps gave 240 frames per peptide.
    seed : int
    """

    explore_s: float = 90.0
    seeds_2aa: int = 16
    seeds_capped: int = 16
    seeds_4aa: int = 20
    built_seeds: int = 4
    equilibration_ps: float = 20.0
    production_ps: float = 150.0
    save_interval_ps: float = 2.0
    seed: int = 1

    def seeds_for(self, spec: PeptideSpec) -> int:
        count = {"2aa": self.seeds_2aa, "capped": self.seeds_capped, "4aa": self.seeds_4aa}[spec.group]
        return max(4, count // 4) if spec.split == "validation" else count


# ------------------------------------------------------------------------------------------------ splits
def _random_sequences(rng: np.random.Generator, length: int, count: int, exclude: set) -> List[str]:
    chosen: List[str] = []
    while len(chosen) < count:
        sequence = "".join(rng.choice(list(AMINO_ACIDS), size=length))
        if sequence not in exclude and sequence not in chosen:
            chosen.append(sequence)
    return chosen


def make_splits(dipeptides: Dict[str, List[str]], seed: int = 2026) -> Dict[str, object]:
    """The peptide set's splits (deterministic for a seed; see the module docstring).

    Parameters
    ----------
    dipeptides : dict
        ``train`` / ``validation`` / ``test`` lists of zwitterionic two-residue sequences.
    seed : int
    """
    rng = np.random.default_rng(seed)
    capped_train = _random_sequences(rng, 2, 24, set()) + _random_sequences(rng, 3, 24, set())
    capped_validation = (_random_sequences(rng, 2, 4, set(capped_train))
                         + _random_sequences(rng, 3, 4, set(capped_train)))
    tetra = _random_sequences(rng, 4, 48, set())
    return {
        "description": "Peptides of the transferable model's data (one-letter codes, N- to C-terminus). "
                       "2aa: zwitterionic dipeptides (the shared train/validation/test split); capped: "
                       "ACE-X...-NME of 2-3 residues; 4aa: zwitterionic tetrapeptides, test held out of every "
                       "training set; capped1: every ACE-X-NME, test only. Train only on train, choose on "
                       "validation, report on test.",
        "seed": seed,
        "2aa": {split: list(dipeptides[split]) for split in ("train", "validation", "test")},
        "capped": {"train": capped_train, "validation": capped_validation},
        "4aa": {"train": tetra[:32], "validation": tetra[32:36], "test": tetra[36:]},
        "capped1": {"test": list(AMINO_ACIDS)},
    }


def read_splits(path: str = SPLITS_FILE) -> Dict[str, Dict[str, List[str]]]:
    """The recorded splits (group -> split -> sequences)."""
    with open(path) as handle:
        data = json.load(handle)
    return {group: data[group] for group in GROUPS}


def peptides(splits: Dict[str, Dict[str, List[str]]], which: Sequence[str] = ("train", "validation")
             ) -> List[PeptideSpec]:
    """Peptides of the given splits in the data job's fixed order.

    Groups are interleaved in proportion to their sizes, training before validation, so that any
    prefix of the work is a balanced sample of the whole.
    """
    order: List[Tuple[int, float, PeptideSpec]] = []
    for rank, split in enumerate(which):
        for group in GROUPS:
            sequences = splits.get(group, {}).get(split, [])
            for k, sequence in enumerate(sequences):
                spec = PeptideSpec(sequence, group in ("capped", "capped1"), group, split)
                order.append((rank, (k + 0.5) / len(sequences), spec))
    order.sort(key=lambda item: (item[0], item[1], item[2].group))
    return [spec for _, _, spec in order]


def residue_slots(spec: PeptideSpec) -> List[str]:
    """The (terminus, residue) slots a peptide's data cover: ``N:A`` (NH3+ residue), ``C:K`` (carboxylate),
    ``M:E`` (a residue with amides on both sides, as next to caps or inside a chain)."""
    if spec.capped:
        return [f"M:{x}" for x in spec.sequence]
    return [f"N:{spec.sequence[0]}", f"C:{spec.sequence[-1]}"] + [f"M:{x}" for x in spec.sequence[1:-1]]


def coverage_additions(order: Sequence[PeptideSpec], chosen: Sequence[PeptideSpec]) -> List[PeptideSpec]:
    """Peptides of ``order`` (not chosen) that give every residue type in every slot a training peptide.

    A transferable model has no template for a slot it never saw, so a prefix of the fixed order
    that leaves one out (the first 168 training peptides have no N-terminal Q, R, T or W) is
    completed, for each missing slot, with the shortest peptide of the order that covers it.
    """
    covered = {slot for spec in chosen for slot in residue_slots(spec)}
    cheapest_first = sorted(order, key=lambda s: len(s.sequence))  # stable: the order within a length
    wanted = [f"{where}:{x}" for where in "NCM" for x in AMINO_ACIDS]
    additions: List[PeptideSpec] = []
    for slot in wanted:
        if slot in covered:
            continue
        spec = next((s for s in cheapest_first if slot in residue_slots(s) and s not in chosen
                     and s not in additions), None)
        if spec is not None:
            additions.append(spec)
            covered.update(residue_slots(spec))
    return additions


# ------------------------------------------------------------------------------------------------ one peptide
def packed_path(output: str, spec: PeptideSpec) -> str:
    return os.path.join(output, f"{spec.name}.npz")


def _fit_settings(spec: PeptideSpec, settings: PeptideDataSettings):
    from ..fit import FitSettings

    return FitSettings(workers=1, explore_s=settings.explore_s, seeds=settings.seeds_for(spec),
                       built_seeds=min(settings.built_seeds, settings.seeds_for(spec) // 2),
                       seed_equilibration_ps=settings.equilibration_ps, seed_production_ps=settings.production_ps,
                       save_interval_ps=settings.save_interval_ps, adaptive_production=False, seed=settings.seed)


def pack(fit, spec: PeptideSpec, settings: PeptideDataSettings, path: str) -> Dict[str, object]:
    """Pack a fit folder's seeded MD into one compact file (see the module docstring); returns its record."""
    from .pairs import Trajectory

    frames, run_index = [], []
    for k in range(fit.settings.seeds):
        trajectory = Trajectory(fit.path("md", f"seed-{k:03d}"))
        positions = trajectory.frames()
        frames.append(positions)
        run_index.append(np.full(len(positions), k, dtype=np.int16))
    positions = np.concatenate(frames).astype(np.float64)
    positions -= positions.mean(axis=1, keepdims=True)
    quantised = np.round(positions / POSITION_SCALE_NM)
    if np.abs(quantised).max() > np.iinfo(np.int16).max:
        raise ValueError(f"{spec.name}: an atom lies more than 3.2 nm from the centroid; too large for the packed format.")
    values = fit.observables.values(positions)
    states = fit.observables.indicators(values, extra=True)
    stages = fit.record["stages"]
    record = {
        "format": "openmm-timewarp-peptide-data", "version": 1, "package_version": __version__,
        "peptide": asdict(spec), "name": spec.name, "preset": PRESET, "temperature_K": TEMPERATURE_K,
        "settings": asdict(settings), "seeds": fit.settings.seeds, "frames": int(len(positions)),
        "atoms": int(positions.shape[1]), "simulated_ns": stages["md"]["simulated_ns"],
        "seconds": {stage: stages[stage]["seconds"] for stage in ("molecule", "explore", "seeds", "md")},
        "swap_acceptance": stages["explore"]["swap_acceptance"],
        "seeded_states": stages["seeds"]["states"],
        "populations": {name: float(mask.mean()) for name, mask in states.items()},
    }
    with open(fit.path("structure.pdb")) as handle:
        pdb = handle.read()
    atomic_write(path, lambda tmp: np.savez_compressed(
        tmp, positions=quantised.astype(np.int16), scale_nm=np.float64(POSITION_SCALE_NM),
        run=np.concatenate(run_index), pdb=np.asarray(pdb), record=np.asarray(json.dumps(record))), suffix=".npz")
    return record


def make_peptide_data(spec: PeptideSpec, output: str, scratch: str, settings: PeptideDataSettings,
                      keep_scratch: bool = False) -> Dict[str, object]:
    """Explore, seed and sample one peptide, then pack it (resumable; returns the packed record)."""
    from ..fit import Fit

    path = packed_path(output, spec)
    if os.path.isfile(path):
        return read_record(path)
    fit = Fit(os.path.join(scratch, spec.name), spec.sequence, spec.capped, PRESET, None, TEMPERATURE_K,
              _fit_settings(spec, settings), progress=False)
    fit.run(until="md")
    record = pack(fit, spec, settings, path)
    if not keep_scratch:
        shutil.rmtree(fit.directory, ignore_errors=True)
    return record


def read_record(path: str) -> Dict[str, object]:
    with np.load(path) as data:
        return json.loads(str(data["record"]))


def load_packed(path: str) -> Tuple[np.ndarray, Dict[str, object], str]:
    """A packed peptide: positions float32 [F, N, 3] in nm (centred), its record and its PDB text."""
    with np.load(path) as data:
        positions = data["positions"].astype(np.float32) * np.float32(data["scale_nm"])
        return positions, json.loads(str(data["record"])), str(data["pdb"])


# ------------------------------------------------------------------------------------------------ the set
@dataclass
class Progress:
    done: int
    total: int
    seconds: float


def make_peptide_set(output: str, scratch: Optional[str] = None, which: Sequence[str] = ("train", "validation"),
                     shard: Tuple[int, int] = (0, 1), settings: Optional[PeptideDataSettings] = None,
                     limit: Optional[int] = None, splits_path: str = SPLITS_FILE, progress: bool = True,
                     keep_scratch: bool = False, cover: bool = False) -> Progress:
    """Make (or continue) the packed data of every peptide of this shard; see the module docstring.

    ``limit`` takes a prefix of the shard's share of the fixed order; with ``cover``, the peptides
    of :func:`coverage_additions` that complete every shard's prefix are added (shared out).
    """
    from tqdm.auto import tqdm

    settings = settings or PeptideDataSettings()
    scratch = scratch or os.path.join(output, "scratch")
    os.makedirs(output, exist_ok=True)
    _check_settings(output, settings)
    index, count = shard
    order = peptides(read_splits(splits_path), which)
    todo = order[index::count]
    if limit is not None:
        todo = todo[:limit]
        if cover:  # what every shard's prefix leaves uncovered, shared out among the shards
            prefixes = [spec for k in range(count) for spec in order[k::count][:limit]]
            todo += coverage_additions(order, prefixes)[index::count]
    start = time.perf_counter()
    with tqdm(total=len(todo), desc=f"peptides (shard {index}/{count})", disable=not progress) as bar:
        done = 0
        for spec in todo:
            bar.set_postfix_str(spec.name)
            make_peptide_data(spec, output, scratch, settings, keep_scratch)
            done += 1
            bar.update(1)
    return Progress(done, len(todo), time.perf_counter() - start)


def _check_settings(output: str, settings: PeptideDataSettings) -> None:
    path = os.path.join(output, "settings.json")
    wanted = asdict(settings)
    recorded = read_json(path)
    if recorded is not None:
        check_settings(output, "peptide data", recorded, wanted, keys=sorted(set(recorded) | set(wanted)))
        return
    write_json_atomic(path, wanted)
