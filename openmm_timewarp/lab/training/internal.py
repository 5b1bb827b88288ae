"""The ``internal`` family: one molecule in internal coordinates (Z-matrix, spline couplings).

Made from MD runs of one molecule. Without a lag the flow is a state-independent proposal
(tau = infinity: a Boltzmann generator used inside MH), trained on frames; with a lag it is a
conditional proposal q(c(t + tau) | c(t)), trained on pairs. :meth:`InternalFamily.export`
writes one flow, or several as a mixture, as a contract-1 file that carries the molecular graph,
the tetrahedral handedness of the training data and the move settings it recommends.

Runs whose equivalent hydrogens carry the other cyclic order (a permutational isomer, see
:meth:`openmm_timewarp.lab.datasets.pairs.Trajectory.hydrogen_relabelling`) are relabelled on loading.

Runs made with bonds to hydrogen constrained (``simulate(..., constraints="hbonds")``) make a model
for such Systems: its flows hold those bonds (at their median length in the data) while training,
so the likelihood covers the free coordinates only, and the export says ``constraints = "hbonds"``.
"""

import copy
import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ... import __version__
from ..datasets.pairs import find_trajectories, lag_in_frames, split_by_time
from ...flow.internal.model import InternalCoordinateFlow, InternalFlowConfig, build_flow, empty_flow, standardization
from ...flow.internal.proposal import InternalCoordinateProposal
from ...flow.internal.zmatrix import InternalCoordinates, ZMatrix, build_zmatrix, log_jacobian, peptide_backbone
from ...matching import handedness_of
from .families import FlowFamily, TrainingData, register_family

# Where a model says nothing else: pure MH moves. A state-independent flow: one MH step per move (a
# chain can be recorded after every step), proposals drawn 256 at a time and all used. A proposal that
# depends on the current state: 16 MH steps per move, drawn 16 at a time from the current state.
# proposalsPerMoveMixed: MH steps per move when MD runs between moves (8 measured best for alanine
# dipeptide with 100 MD steps between moves; docs/results.md)
INDEPENDENT_SETTINGS = {"moveInterval": 0, "proposalsPerMove": 1, "batchSize": 256, "proposalsPerMoveMixed": 8}
CONDITIONAL_SETTINGS = {"moveInterval": 0, "proposalsPerMove": 16, "batchSize": 16}


class InternalCoordinateRows(torch.utils.data.Dataset):
    """Items of an internal-coordinate dataset: (target row, conditioning row or -1) into shared tensors."""

    def __init__(self, targets: np.ndarray, conditions: Optional[np.ndarray] = None):
        self.targets = np.asarray(targets, dtype=np.int64)
        self.conditions = None if conditions is None else np.asarray(conditions, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Tuple[int, int]:
        return int(self.targets[index]), (-1 if self.conditions is None else int(self.conditions[index]))


class RowCollator:
    """Turns (target, condition) row pairs into a batch of internal coordinates."""

    def __init__(self, bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor):
        self.bonds, self.angles, self.torsions = bonds, angles, torsions

    def rows(self, index: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.bonds[index], self.angles[index], self.torsions[index]

    def __call__(self, items) -> Dict[str, Any]:
        targets = torch.tensor([t for t, _ in items], dtype=torch.int64)
        conditions = torch.tensor([c for _, c in items], dtype=torch.int64)
        batch = {"target": self.rows(targets)}
        if bool((conditions >= 0).all()):
            batch["condition"] = self.rows(conditions)
        return batch


def internal_loss(flow: InternalCoordinateFlow, batch, generator, config, training: bool) -> torch.Tensor:
    """Mean -log q(x) per atom, with log q(x) = log q(c) - log J(c) (the density MH sees)."""
    bonds, angles, torsions = batch["target"]
    if flow.conditional:
        cb, ca, ct = batch["condition"]
        context = flow.context_of(cb, ca, ct)
    else:
        ct = torsions[:, :0]
        context = torch.zeros(bonds.shape[0], 0)
    log_q = flow.log_prob(bonds, angles, torsions, context, ct) - log_jacobian(bonds, angles)
    return (-log_q / (bonds.shape[1] + 1)).mean()


def internal_coordinates_of(coordinates: InternalCoordinates, frames: np.ndarray,
                            chunk: int = 8192) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bonds, angles and torsions (float32) of frames [F, N, 3] (nm), computed in float64."""
    parts = [coordinates.double().to_internal(torch.as_tensor(frames[i:i + chunk], dtype=torch.float64))
             for i in range(0, len(frames), chunk)]
    coordinates.float()
    return tuple(torch.cat([p[k] for p in parts]).float() for k in range(3))


def runs_constraints(trajectories) -> str:
    """The bond constraints the runs were made with ("none" or "hbonds", from their settings); one for all."""
    kinds = {t.metadata.get("settings", {}).get("constraints", "none") for t in trajectories}
    if len(kinds) != 1:
        raise ValueError(f"the runs mix constraint settings ({', '.join(sorted(kinds))}); train on runs of one kind.")
    kind = kinds.pop()
    if kind not in ("none", "hbonds"):
        raise ValueError(f"runs made with constraints={kind!r}: the internal family is made for 'none' or 'hbonds'.")
    return kind


def held_bonds(zmatrix: ZMatrix, numbers: Sequence[int], bonds: torch.Tensor, constraints: str) -> Dict[str, list]:
    """The Z-matrix bonds a model for ``constraints`` holds (indices) and their median lengths in ``bonds`` [F, N-1]."""
    if constraints == "none":
        return {"bonds": [], "lengths": []}
    index = [m - 1 for m in range(1, zmatrix.num_atoms)
             if 1 in (numbers[zmatrix.order[m]], numbers[zmatrix.parents[m]])]
    return {"bonds": index, "lengths": [float(v) for v in bonds[:, index].double().median(0).values]}


def hold(flow: InternalCoordinateFlow, held: Optional[Dict[str, list]]) -> InternalCoordinateFlow:
    """Make ``flow`` hold the bonds of :func:`held_bonds` (none: release them)."""
    mask = torch.zeros(flow.num_bonds, dtype=torch.bool)
    lengths = torch.zeros(flow.num_bonds)
    if held and held["bonds"]:
        mask[held["bonds"]] = True
        lengths[held["bonds"]] = torch.tensor(held["lengths"], dtype=torch.float32)
    flow.hold(mask, lengths)
    return flow


def load_molecule_runs(data: Sequence[str]):
    """The runs of one molecule under ``data``, their frames relabelled to the canonical hydrogen order.

    Returns
    -------
    trajectories : list of Trajectory
    frames : list of numpy.ndarray [F_i, N, 3]
    topology : openmm.app.Topology

    Raises
    ------
    ValueError
        The runs hold more than one molecule.
    """
    trajectories = [t for t in find_trajectories(data) if t.num_frames > 0]
    if not trajectories:
        raise ValueError(f"no frames in the runs under {', '.join(data)}")
    peptides = sorted({t.peptide for t in trajectories})
    numbers = {tuple(t.atomic_numbers.tolist()) for t in trajectories}
    if len(peptides) != 1 or len(numbers) != 1:
        raise ValueError(f"the internal family models one molecule; the runs hold {', '.join(peptides)}.")
    frames = []
    permutations = [trajectory.hydrogen_relabelling() for trajectory in trajectories]
    for trajectory, permutation in zip(trajectories, permutations):
        relabel = not np.array_equal(permutation, np.arange(len(permutation)))
        if relabel and any(not np.array_equal(permutation, other) for other in permutations):
            warnings.warn(f"run {trajectory.directory} carries equivalent hydrogens in the other cyclic order (a "
                          "permutational isomer of the other runs); its frames are relabelled.", RuntimeWarning,
                          stacklevel=2)
        positions = trajectory.frames()
        frames.append(positions[:, permutation] if relabel else positions)
    topology = trajectories[0].topology()
    return trajectories, frames, topology


class InternalFamily(FlowFamily):
    """A proposal for one molecule in internal coordinates: state-independent, conditional at a lag, or a mixture."""

    name = "internal"
    description = "one molecule in internal coordinates (bonds, angles, torsions; spline couplings)"
    config_type = InternalFlowConfig

    def training_data(self, data: Sequence[str], lag_ps: Optional[float], splits: Optional[str] = None) -> TrainingData:
        if splits is not None:
            raise ValueError("the internal family models one molecule: splits by peptide do not apply.")
        trajectories, frames, topology = load_molecule_runs(data)
        numbers = [atom.element.atomic_number for atom in topology.atoms()]
        bonds = [(a.index, b.index) for a, b in topology.bonds()]
        zmatrix = build_zmatrix(numbers, bonds, peptide_backbone(topology))
        coordinates = InternalCoordinates(zmatrix)
        offsets, segments = np.cumsum([0] + [len(f) for f in frames]), split_by_time(trajectories)
        all_frames = np.concatenate(frames)
        columns = internal_coordinates_of(coordinates, all_frames)
        index = {id(t): k for k, t in enumerate(trajectories)}
        datasets = {}
        for name in ("train", "validation"):
            targets, conditions = [], []
            for trajectory, start, stop in segments[name]:
                base = offsets[index[id(trajectory)]]
                if lag_ps is None:
                    targets.append(np.arange(start, stop) + base)
                else:
                    lag = lag_in_frames(trajectory, lag_ps)
                    if stop - start > lag:
                        conditions.append(np.arange(start, stop - lag) + base)
                        targets.append(np.arange(start + lag, stop) + base)
            targets = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
            conditions = (np.concatenate(conditions) if conditions else np.zeros(0, dtype=np.int64)) if lag_ps else None
            datasets[name] = InternalCoordinateRows(targets, conditions)
            if lag_ps is not None and len(targets) == 0:
                longest = max(((stop - start) * t.save_interval_ps for t, start, stop in segments[name]), default=0.0)
                raise ValueError(f"no {name} pairs at a lag of {lag_ps:g} ps: the {name} part of each run "
                                 f"(by time; {longest:g} ps at the longest) is not longer than the lag. "
                                 "Use a shorter --lag or longer runs.")
        rows = torch.as_tensor(datasets["train"].targets)
        rigid = standardization(*(column[rows] for column in columns))["rigid"]
        constraints = runs_constraints(trajectories)
        first = trajectories[0]
        summary = {
            "data": [os.path.abspath(d) for d in data],
            "lag_ps": lag_ps,
            "split": "by time within each run (0.8/0.1/0.1)",
            "splits": None,
            "peptides": [first.peptide],
            "runs": len(trajectories),
            "frames": int(len(all_frames)),
            "simulated_ns": float(sum(t.num_frames * t.save_interval_ps for t in trajectories) / 1000.0),
            "train_items": len(datasets["train"]),
            "validation_items": len(datasets["validation"]),
            "preset": first.preset,
            "temperature_K": first.temperature_K,
            "num_atoms": int(first.num_atoms),
            "topology": first.topology_path(),
            "constraints": constraints,
        }
        family_state = {
            "zmatrix": zmatrix.to_dict(),
            "atomic_numbers": numbers,
            "bonds": [list(b) for b in bonds],
            "handedness": handedness_of(numbers, bonds, all_frames[0]),
            "atom_names": [f"{a.residue.name}{a.residue.id}:{a.name}" for a in topology.atoms()],
            "rigid_torsions": rigid,
            "held_bonds": held_bonds(zmatrix, numbers, columns[0][rows], constraints),
        }
        return TrainingData(datasets["train"], datasets["validation"], RowCollator(*columns), internal_loss,
                            summary, family_state, arrays={"columns": columns})

    def config(self, values: Optional[Dict[str, Any]] = None) -> InternalFlowConfig:
        return InternalFlowConfig(**(values or {}))

    def build(self, config: InternalFlowConfig, data: TrainingData) -> nn.Module:
        conditional = data.summary["lag_ps"] is not None
        if config.conditional != conditional:
            config = InternalFlowConfig(**{**config.to_dict(), "conditional": conditional})
        rows = torch.as_tensor(data.train.targets)
        bonds, angles, torsions = (column[rows] for column in data.arrays["columns"])
        flow = build_flow(data.summary["num_atoms"], config, bonds, angles, torsions)
        return hold(flow, data.family_state.get("held_bonds"))

    def restore(self, run_info: Dict[str, Any]) -> nn.Module:
        flow = empty_flow(int(run_info["data_summary"]["num_atoms"]), InternalFlowConfig(**run_info["family_config"]),
                          run_info["family_state"]["rigid_torsions"])
        return hold(flow, run_info["family_state"].get("held_bonds"))

    def export(self, runs: List[Tuple[nn.Module, Dict[str, Any]]], path: str, *, weights: Sequence[float],
               metadata: Dict[str, Any], recommended_settings: Optional[Dict[str, int]] = None) -> nn.Module:
        states = [run_info["family_state"] for _, run_info in runs]
        for other in states[1:]:
            for key in ("zmatrix", "atomic_numbers", "bonds"):
                if other[key] != states[0][key]:
                    raise ValueError(f"the runs to mix describe different molecules or Z-matrices ({key} differs).")
        state = states[0]
        kinds = {run_info["data_summary"].get("constraints", "none") for _, run_info in runs}
        if len(kinds) != 1:
            raise ValueError(f"the runs to mix were made for different constraints ({', '.join(sorted(kinds))}).")
        # the file holds no bonds until the kernel asks (hold_bonds at bind)
        flows = [hold(copy.deepcopy(flow), None).float().eval().cpu() for flow, _ in runs]
        names = ["local" if flow.conditional else "global" for flow in flows]
        if len(set(names)) != len(names):
            names = [f"{name}{k}" for k, name in enumerate(names)]
        summaries = [run_info["data_summary"] for _, run_info in runs]
        lags = [s["lag_ps"] for s in summaries if s["lag_ps"] is not None]
        first = summaries[0]
        independent = len(flows) == 1 and not flows[0].conditional
        meta = dict(metadata)
        meta.setdefault("family", self.name)
        meta.setdefault("components", [
            {"name": name, "weight": float(w), "conditional": bool(flow.conditional), "training_data": summary,
             "architecture": flow.config_dict, "num_parameters": flow.num_parameters()}
            for name, w, flow, summary in zip(names, weights, flows, summaries)])
        meta.setdefault("zmatrix", state["zmatrix"])
        meta.setdefault("atom_names", state.get("atom_names"))
        meta["recommended_settings"] = {**(INDEPENDENT_SETTINGS if independent else CONDITIONAL_SETTINGS),
                                        **(recommended_settings or {})}
        meta.setdefault("package_version", __version__)
        proposal = InternalCoordinateProposal(
            InternalCoordinates(ZMatrix.from_dict(state["zmatrix"])), flows, list(weights), names,
            temperature=float(first["temperature_K"]), tau_ps=float(lags[0]) if lags else 0.0,
            force_field=str(first["preset"]), atomic_numbers=state["atomic_numbers"], bonds=state["bonds"],
            handedness=state["handedness"], metadata_json=json.dumps(meta, sort_keys=True), constraints=kinds.pop())
        scripted = torch.jit.script(proposal)
        scripted.save(path)
        return scripted


register_family(InternalFamily())


def rebuild_proposal(path: str, output: str, constraints: Optional[str] = None) -> nn.Module:
    """Re-export an internal-family file with this package's code (for example to gain ``hold_bonds``).

    The weights, standardisation, Z-matrix, graph and metadata are read from the file at ``path``; the
    proposal is rebuilt as this version of :class:`InternalCoordinateProposal` and saved to ``output``.
    Its densities are the file's to float32 rounding (checked on 64 noise rows before saving).

    Parameters
    ----------
    constraints : str, optional
        The ``constraints`` attribute to write (default: the file's, else "none").

    Returns
    -------
    torch.jit.ScriptModule
        The scripted module that was saved.
    """
    old = torch.jit.load(path, map_location="cpu")
    meta = json.loads(old.metadata_json)
    if meta.get("family") != "internal":
        raise ValueError(f"{path} is not an internal-family model file (metadata family {meta.get('family')!r}).")
    state = old.state_dict()
    flows = []
    for k, component in enumerate(meta["components"]):
        prefix = f"flows.{k}."
        rigid = state[prefix + "rigid_index"].tolist()
        flow = empty_flow(int(old.num_atoms), InternalFlowConfig(**component["architecture"]), rigid)
        known = set(flow.state_dict())  # a scripted file also lists the held-bond buffers, which are not state
        flow.load_state_dict({key[len(prefix):]: value for key, value in state.items()
                              if key.startswith(prefix) and key[len(prefix):] in known})
        flows.append(flow.float().eval())
    proposal = InternalCoordinateProposal(
        InternalCoordinates(ZMatrix.from_dict(meta["zmatrix"])), flows, [c["weight"] for c in meta["components"]],
        list(old.component_names), temperature=float(old.temperature), tau_ps=float(old.tau_ps),
        force_field=str(old.force_field), atomic_numbers=list(old.atomic_numbers), bonds=list(old.bonds),
        handedness=list(old.handedness), metadata_json=old.metadata_json,
        constraints=constraints or str(getattr(old, "constraints", "none")))
    scripted = torch.jit.script(proposal)
    x = torch.zeros(1, old.num_atoms, 3)  # a frame: root at the origin, the next two atoms on the axes
    x[0, proposal.coordinates.first, 0] = 1.0
    x[0, proposal.coordinates.second, 1] = 1.0
    z = torch.randn(64, old.num_atoms, 6, generator=torch.Generator().manual_seed(0))
    numbers = torch.tensor(list(old.atomic_numbers))
    with torch.no_grad():
        x0, v0, log_q0 = old.sample(old.coordinates.place(*_mean_structure(flows[0]), x), numbers, z)
        x1, v1, log_q1 = scripted.sample(x0[:1].expand_as(x0), numbers, z)
        finite = torch.isfinite(log_q0)
        if not (bool(finite.any()) and torch.allclose(x0[finite], x1[finite], atol=1e-4) and torch.equal(finite, torch.isfinite(log_q1))
                and torch.allclose(log_q0[finite], log_q1[finite], atol=2e-3, rtol=1e-5)):
            raise RuntimeError(f"the rebuilt proposal does not reproduce {path}")
    scripted.save(output)
    return scripted


def _mean_structure(flow: InternalCoordinateFlow) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bonds, angles and torsions at the flow's standardisation means ([1, ...] each): a valid structure."""
    bonds = flow.geometry_mean[:flow.num_bonds].unsqueeze(0)
    angles = flow.geometry_mean[flow.num_bonds:flow.num_bonds + flow.num_angles].unsqueeze(0)
    torsions = torch.zeros(1, flow.num_torsions)
    torsions[:, flow.rigid_index] = flow.geometry_mean[flow.num_bonds + flow.num_angles:]
    torsions[:, flow.soft_index] = flow.soft_offset
    return bonds, angles, torsions
