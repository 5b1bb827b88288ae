"""Training pairs (x(t), x(t + tau)) from MD runs written by ``openmm_timewarp.lab.md.simulate``.

Frames are read lazily from the DCD files through a memory map, so memory does not grow with the
number of frames or pairs: a dataset holds one offset per trajectory segment, and an item is two
frames read on demand.

Typical use::

    trajectories = find_trajectories("data/2aa")
    splits = split_by_peptide(trajectories, "dipeptide-splits.json")
    train = PairDataset(splits["train"], lag=100 * unit.picosecond)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate_pairs)

For one molecule, ``split_by_time`` cuts each trajectory into contiguous blocks instead.
"""

import json
import os
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.utils.data
from openmm import unit

from ..md.dcd import read_dcd_layout
from ..md.rundir import METADATA_FILE, read_metadata
from ..systems import peptide_name
from ...units import in_unit

Segment = Tuple["Trajectory", int, int]


class Trajectory:
    """One MD run on disk: its metadata and lazily read frames.

    Parameters
    ----------
    directory : str
        A run directory written by ``simulate`` (metadata.json, topology.pdb, trajectory.dcd).

    Attributes
    ----------
    directory, name : str
        ``name`` is the run's name (the directory name it was given).
    peptide : str
        ``systems.peptide_name`` of its sequence: ``"AK"`` or ``"ACE-A-NME"``; splits use this. For
        a System file's molecule (no sequence), the molecule's name.
    sequence : str
    capped : bool
    num_atoms, num_frames : int
        ``num_frames`` counts the checkpointed frames (a run still going may hold a few more).
    atomic_numbers : numpy.ndarray
        int64 [num_atoms].
    save_interval_ps, temperature_K : float
    preset : str
    metadata : dict

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or invalid metadata; a trajectory that is missing, corrupt, holds another number of
        atoms, or fewer frames than its metadata records (truncated). Messages name the file.
    """

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self.metadata = read_metadata(directory)
        meta = self.metadata
        try:
            self.name = meta["name"]
            self.sequence = meta["sequence"]
            self.capped = bool(meta["capped"])
            self.num_atoms = int(meta["num_atoms"])
            self.num_frames = int(meta["num_frames"])
            self.save_interval_ps = float(meta["save_interval_ps"])
            self.temperature_K = float(meta["temperature_K"])
            self.preset = meta["preset"]["name"]
            self.atomic_numbers = np.asarray(meta["atomic_numbers"], dtype=np.int64)
            self.path = os.path.join(self.directory, meta["files"]["trajectory"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{os.path.join(directory, METADATA_FILE)!r} lacks or garbles {error}.") from None
        # a System file's molecule has no sequence: its runs go under the molecule's name
        molecule = meta.get("settings", {}).get("molecule")
        self.peptide = peptide_name(self.sequence, self.capped) if self.sequence else str(molecule or self.name)
        if len(self.atomic_numbers) != self.num_atoms:
            raise ValueError(f"{os.path.join(directory, METADATA_FILE)!r}: {len(self.atomic_numbers)} atomic numbers "
                             f"for {self.num_atoms} atoms.")
        self.layout = read_dcd_layout(self.path)
        if self.layout.num_atoms != self.num_atoms:
            raise ValueError(f"{self.path!r} has {self.layout.num_atoms} atoms but its metadata says {self.num_atoms}.")
        if self.layout.frames_in_file < self.num_frames:
            raise ValueError(f"{self.path!r} is truncated: it holds {self.layout.frames_in_file} whole frames but its "
                             f"metadata records {self.num_frames}. Continue the run with the same simulate command "
                             "(it rewrites the missing frames) or remove the directory.")
        self._frames = None

    def __repr__(self) -> str:
        return f"Trajectory({self.name!r}, {self.num_frames} frames, {self.num_atoms} atoms, every {self.save_interval_ps:g} ps)"

    def __len__(self) -> int:
        return self.num_frames

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_frames"] = None  # worker processes open their own memory map
        return state

    def _records(self) -> np.ndarray:
        if self._frames is None:
            self._frames = np.memmap(self.path, dtype=self.layout.frame_dtype(), mode="r",
                                     offset=self.layout.header_bytes, shape=(self.num_frames,))
        return self._frames

    def positions(self, index: int) -> np.ndarray:
        """Frame ``index`` as float32 [num_atoms, 3] in nm.

        Raises
        ------
        IndexError
            Outside 0..num_frames-1.
        ValueError
            The frame's record markers are wrong (corrupt file).
        """
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} outside {self.path!r} (0..{self.num_frames - 1}).")
        record = self._records()[index]
        expected = 4 * self.num_atoms
        for axis in "xyz":
            if record[f"{axis}_begin"] != expected or record[f"{axis}_end"] != expected:
                raise ValueError(f"{self.path!r}: frame {index} is corrupt (bad record marker); regenerate the trajectory.")
        return np.stack([record["x"], record["y"], record["z"]], axis=-1).astype(np.float32) * np.float32(0.1)

    def topology_path(self) -> str:
        """Path of the run's topology PDB."""
        return os.path.join(self.directory, self.metadata["files"]["topology"])

    def frames(self, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        """Frames ``start..stop-1`` as float32 [F, num_atoms, 3] in nm (read at once).

        Raises
        ------
        ValueError
            A record marker is wrong (corrupt file).
        """
        stop = self.num_frames if stop is None else min(int(stop), self.num_frames)
        records = self._records()[int(start):stop]
        expected = 4 * self.num_atoms
        for axis in "xyz":
            if np.any(records[f"{axis}_begin"] != expected) or np.any(records[f"{axis}_end"] != expected):
                raise ValueError(f"{self.path!r}: a frame in {start}..{stop - 1} is corrupt (bad record marker); "
                                 "regenerate the trajectory.")
        return np.stack([records["x"], records["y"], records["z"]], axis=-1).astype(np.float32) * np.float32(0.1)

    def topology(self):
        """The run's topology (``openmm.app.Topology``), with a System file's bonds as its run recorded them.

        A PDB read back gets its residues' template bonds and loses the bonds between standard
        residues that CONECT records do not carry (a cyclic peptide's closing bond): a System
        file's molecular graph comes from the run's metadata instead.
        """
        from openmm import app

        from ..system_file import with_bonds

        topology = app.PDBFile(self.topology_path()).topology
        bonds = self.metadata.get("settings", {}).get("bonds")
        return topology if bonds is None else with_bonds(topology, bonds)

    def bonds(self) -> List[Tuple[int, int]]:
        """Bonded atom pairs of the run's molecule (:meth:`topology`)."""
        return [(a.index, b.index) for a, b in self.topology().bonds()]

    def hydrogen_relabelling(self) -> np.ndarray:
        """The permutation that gives this run's equivalent hydrogens the package's canonical order.

        Runs made before ``build_peptide`` fixed the labels may carry, for example, a methyl
        group's hydrogens in the opposite cyclic order: a permutational isomer that MD never
        turns back. ``frames()[:, permutation]`` relabels them (the identity when nothing needs it).
        """
        from ...chirality import canonical_hydrogen_permutation

        if self.num_frames == 0:
            return np.arange(self.num_atoms)
        return canonical_hydrogen_permutation(self.atomic_numbers.tolist(), self.bonds(), self.positions(0))


def find_trajectories(roots: Union[str, Iterable[str]], preset: Optional[str] = None,
                      temperature=None) -> List[Trajectory]:
    """All MD runs under one or more directories (searched recursively), sorted by path.

    Parameters
    ----------
    roots : str or iterable of str
    preset : str, optional
        Keep only runs with this force-field preset.
    temperature : openmm.unit.Quantity or float, optional
        Keep only runs at this temperature (kelvin if a float).

    Returns
    -------
    list of Trajectory

    Raises
    ------
    FileNotFoundError
        A root does not exist, or holds no run.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    if temperature is not None:
        temperature = in_unit(temperature, unit.kelvin, "temperature")
    found = []
    for root in roots:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"data directory {root!r} does not exist.")
        for directory, _, files in os.walk(root):
            if METADATA_FILE in files:
                found.append(directory)
    if not found:
        raise FileNotFoundError(f"no MD runs ({METADATA_FILE}) under {', '.join(map(repr, roots))}; "
                                "make some with `openmm-timewarp simulate`.")
    trajectories = [Trajectory(d) for d in sorted(found)]
    if preset is not None:
        trajectories = [t for t in trajectories if t.preset == preset]
    if temperature is not None:
        trajectories = [t for t in trajectories if abs(t.temperature_K - float(temperature)) < 1e-6]
    return trajectories


def lag_in_frames(trajectory: Trajectory, lag) -> int:
    """The lag as a number of saved frames of ``trajectory``.

    Parameters
    ----------
    trajectory : Trajectory
    lag : openmm.unit.Quantity or float
        Time (picoseconds if a float).

    Raises
    ------
    ValueError
        The lag is not a positive whole multiple of the trajectory's save interval.
    """
    lag_ps = in_unit(lag, unit.picosecond, "lag")
    ratio = lag_ps / trajectory.save_interval_ps
    frames = int(round(ratio))
    if frames < 1 or abs(ratio - frames) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"lag {lag_ps:g} ps is not a positive multiple of the save interval "
                         f"({trajectory.save_interval_ps:g} ps) of {trajectory.path!r}.")
    return frames


class PairDataset(torch.utils.data.Dataset):
    """Pairs (x(t), x(t + lag)) from segments of trajectories.

    Parameters
    ----------
    segments : sequence of Trajectory or (Trajectory, start, stop)
        Whole trajectories, or frame windows [start, stop); both frames of a pair lie in one window.
    lag : openmm.unit.Quantity or float
        Picoseconds if a float; a multiple of every trajectory's save interval.

    Items are dicts: ``x_cond`` and ``x_target`` float32 [N, 3] (nm), ``atomic_numbers`` int64 [N].
    Batch them with ``collate_pairs``.

    Raises
    ------
    ValueError
        A lag that is not a multiple of a save interval, or a window outside its trajectory.
    """

    def __init__(self, segments: Sequence[Union[Trajectory, Segment]], lag):
        self.segments: List[Segment] = []
        self.lags: List[int] = []
        for segment in segments:
            trajectory, start, stop = (segment, 0, segment.num_frames) if isinstance(segment, Trajectory) else segment
            if not 0 <= start <= stop <= trajectory.num_frames:
                raise ValueError(f"window [{start}, {stop}) outside {trajectory.path!r} ({trajectory.num_frames} frames).")
            self.segments.append((trajectory, int(start), int(stop)))
            self.lags.append(lag_in_frames(trajectory, lag))
        counts = np.array([max(0, stop - start - k) for (_, start, stop), k in zip(self.segments, self.lags)], dtype=np.int64)
        self._ends = np.cumsum(counts)

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def pair_frames(self, index: int) -> Tuple[Trajectory, int, int]:
        """The trajectory and the two frame indices of pair ``index``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"pair {index} outside a dataset of {n} pairs.")
        k = int(np.searchsorted(self._ends, index, side="right"))
        first = index - (int(self._ends[k - 1]) if k else 0)
        trajectory, start, _ = self.segments[k]
        return trajectory, start + first, start + first + self.lags[k]

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        trajectory, s, t = self.pair_frames(index)
        return {
            "x_cond": torch.from_numpy(trajectory.positions(s)),
            "x_target": torch.from_numpy(trajectory.positions(t)),
            "atomic_numbers": torch.from_numpy(trajectory.atomic_numbers),
        }

    def peptides(self) -> List[str]:
        """Sorted peptide names in this dataset."""
        return sorted({trajectory.peptide for trajectory, _, _ in self.segments})


def collate_pairs(items: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Batch pairs of molecules of different sizes by zero padding.

    Parameters
    ----------
    items : sequence of dict
        ``PairDataset`` items.

    Returns
    -------
    dict
        ``x_cond``, ``x_target``: float32 [B, Nmax, 3] (nm); ``atomic_numbers``: int64 [B, Nmax]
        (0 for padding); ``mask``: bool [B, Nmax], True for real atoms.
    """
    if not items:
        raise ValueError("collate_pairs needs at least one item.")
    sizes = [item["atomic_numbers"].shape[0] for item in items]
    batch, n_max = len(items), max(sizes)
    x_cond = torch.zeros(batch, n_max, 3, dtype=torch.float32)
    x_target = torch.zeros(batch, n_max, 3, dtype=torch.float32)
    numbers = torch.zeros(batch, n_max, dtype=torch.int64)
    mask = torch.zeros(batch, n_max, dtype=torch.bool)
    for b, (item, n) in enumerate(zip(items, sizes)):
        x_cond[b, :n] = item["x_cond"]
        x_target[b, :n] = item["x_target"]
        numbers[b, :n] = item["atomic_numbers"]
        mask[b, :n] = True
    return {"x_cond": x_cond, "x_target": x_target, "atomic_numbers": numbers, "mask": mask}


def load_splits(splits: Union[str, dict]) -> Dict[str, List[str]]:
    """Peptide splits: a dict or a JSON file with keys such as train/validation/test, each a list of names.

    Other keys whose values are not lists (e.g. ``description``) are ignored. Names are peptide
    names as ``systems.peptide_name`` gives them ("AK", "ACE-A-NME").

    Raises
    ------
    ValueError
        No list-valued split, or a peptide in two splits.
    """
    source = splits if isinstance(splits, str) else "splits"
    if isinstance(splits, str):
        if not os.path.isfile(splits):
            raise FileNotFoundError(f"splits file {splits!r} does not exist.")
        with open(splits, encoding="utf-8") as handle:
            try:
                splits = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{source!r} is not valid JSON ({error}).") from None
    result = {key: [str(name).upper() for name in value] for key, value in splits.items() if isinstance(value, list)}
    if not result:
        raise ValueError(f"{source!r} has no splits (lists of peptide names under keys such as train/validation/test).")
    owner: Dict[str, str] = {}
    for key, names in result.items():
        for name in names:
            if owner.setdefault(name, key) != key:
                raise ValueError(f"{source!r}: peptide {name!r} is in both {owner[name]!r} and {key!r}.")
    return result


def split_by_peptide(trajectories: Sequence[Trajectory], splits: Union[str, dict]) -> Dict[str, List[Trajectory]]:
    """Group trajectories by the split their peptide belongs to (no peptide in two splits).

    Parameters
    ----------
    trajectories : sequence of Trajectory
    splits : str or dict
        See ``load_splits``; e.g. the dipeptide splits JSON file.

    Returns
    -------
    dict
        Split name -> trajectories. Trajectories of peptides in no split are left out (with a warning).
    """
    splits = load_splits(splits)
    owner = {name: key for key, names in splits.items() for name in names}
    grouped: Dict[str, List[Trajectory]] = {key: [] for key in splits}
    unassigned = set()
    for trajectory in trajectories:
        key = owner.get(trajectory.peptide)
        if key is None:
            unassigned.add(trajectory.peptide)
        else:
            grouped[key].append(trajectory)
    if unassigned:
        warnings.warn(f"{len(unassigned)} peptide(s) in no split, left out: {', '.join(sorted(unassigned)[:10])}"
                      + (" ..." if len(unassigned) > 10 else ""), RuntimeWarning, stacklevel=2)
    return grouped


def split_by_time(trajectories: Sequence[Trajectory], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  names: Sequence[str] = ("train", "validation", "test")) -> Dict[str, List[Segment]]:
    """Cut every trajectory into consecutive time blocks, one per split (for a single molecule).

    Parameters
    ----------
    trajectories : sequence of Trajectory
    fractions : sequence of float
        Share of each trajectory's frames per split, in time order; they must sum to 1.
    names : sequence of str
        Split names, one per fraction.

    Returns
    -------
    dict
        Split name -> list of (trajectory, start, stop) windows for ``PairDataset``; pairs never
        cross a block boundary.
    """
    if len(fractions) != len(names):
        raise ValueError(f"{len(fractions)} fractions for {len(names)} split names.")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}.")
    edges = np.concatenate([[0.0], np.cumsum(fractions)])
    result: Dict[str, List[Segment]] = {name: [] for name in names}
    for trajectory in trajectories:
        bounds = np.round(edges * trajectory.num_frames).astype(int)
        for name, start, stop in zip(names, bounds[:-1], bounds[1:]):
            result[name].append((trajectory, int(start), int(stop)))
    return result


def pair_datasets(roots: Union[str, Iterable[str]], lag, splits: Union[str, dict, None] = None,
                  fractions: Sequence[float] = (0.8, 0.1, 0.1), preset: Optional[str] = None,
                  temperature=None) -> Dict[str, PairDataset]:
    """Train/validation/test pair datasets from the runs under ``roots``.

    Parameters
    ----------
    roots : str or iterable of str
        Directories searched for runs.
    lag : openmm.unit.Quantity or float
        Picoseconds if a float.
    splits : str or dict, optional
        Split by peptide with this splits file or dict; without it, split each trajectory by time
        with ``fractions`` (train, validation, test).
    fractions : sequence of float
        Time-block fractions when ``splits`` is None.
    preset, temperature : optional
        Filters passed to ``find_trajectories``.

    Returns
    -------
    dict
        Split name -> PairDataset.
    """
    trajectories = find_trajectories(roots, preset=preset, temperature=temperature)
    if splits is not None:
        groups = split_by_peptide(trajectories, splits)
    else:
        groups = split_by_time(trajectories, fractions)
    return {name: PairDataset(segments, lag) for name, segments in groups.items()}
