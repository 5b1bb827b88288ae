"""TimewarpKernel: one Timewarp move on an OpenMM Context, shared by the integrator and the openmmtools move.

The kernel owns the flow, the moves' random generator and the statistics. It reads the current
state from a Context, walks ``proposalsPerMove`` MH (or exploration) steps with the acceptance rule
of :mod:`openmm_timewarp.mcmc`, evaluates energies with the same Context, and leaves the chosen
positions in it. It never integrates: whoever holds the kernel decides when moves happen.

Two walks, by what the flow declares:

- a proposal that depends on the current state draws ``batchSize`` proposals from it, tests them
  in order and discards the rest of the batch after an acceptance (:func:`~openmm_timewarp.mcmc.fixed_budget_walk`);
  reverse densities are evaluated lazily, up to the first acceptance;
- a ``proposal_independent`` flow's proposals are valid from any state that shares their rigid
  frame, so the kernel keeps a buffer of them across MH steps and moves, and knows the current
  state's density log q(x) whenever the Context holds, bit for bit, a proposal it accepted: no
  reverse pass, no discarded draws. Whenever the Context's positions changed outside the kernel
  (MD between moves, ``setPositions``, a checkpoint of another run) the buffer is flushed and
  log q(x) evaluated once, because buffered proposals sit in the old rigid frame.

The energy U(x) of the state the kernel left is cached too and reused while the Context's
positions and global parameters are unchanged. Force parameters changed with
``updateParametersInContext`` are not seen: call :meth:`TimewarpKernel.invalidateCache` then.

A model that carries its molecular graph is matched to the System's atoms when the kernel is
prepared (:mod:`openmm_timewarp.matching`): positions go into the flow in the model's atom order
and come back in the System's.
"""

import base64
import math
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
import openmm
from openmm import unit

from . import atoms as _atoms
from . import units
from .chirality import chirality_changed, chirality_signs, find_chirality_centres
from .contract import FlowContractError, check_flow_outputs, flow_evaluation, load_flow
from .matching import MoleculeMismatchError, candidate_mappings, check_mapping
from .mcmc import acceptance_energy_bound, exploration_energy_bound, fixed_budget_walk

MODES = ("mh", "explore")
DEFAULT_PROPOSALS_PER_MOVE = 16
DEFAULT_BATCH_SIZE = 16
# Systems at most this large run faster on the Reference platform than on CPU.
_SMALL_SYSTEM = 200
_STATE_VERSION = 2

_NM = unit.nanometer
_KJ = unit.kilojoule_per_mole
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def check_system(system):
    """Raise ValueError for Systems that Timewarp moves cannot sample (constraints, periodic box)."""
    if system.getNumConstraints() > 0:
        raise ValueError(
            f"the System has {system.getNumConstraints()} constraints. Timewarp proposals move every "
            "atom freely and cannot satisfy bond constraints without breaking detailed balance. "
            "Create the System with createSystem(..., constraints=None) and use a 1 fs step, or add "
            "hydrogenMass=3*amu and use 2 fs."
        )
    if system.usesPeriodicBoundaryConditions():
        raise ValueError(
            "periodic Systems are not supported by flow contract version 1. Use an implicit-solvent "
            "or vacuum System (NoCutoff or CutoffNonPeriodic)."
        )


def auxiliary_log_density(v: torch.Tensor) -> torch.Tensor:
    """log N(v; 0, I) over the last two dimensions (atoms, xyz)."""
    return -0.5 * v.double().pow(2).sum(dim=(-2, -1)) - v.shape[-2] * 3 * _HALF_LOG_2PI


@dataclass
class _Batch:
    """Proposals drawn from one state, with what the tests need (model atom order)."""

    x: torch.Tensor  # [B, N, 3] float32
    v: torch.Tensor
    log_q: torch.Tensor  # [B]
    v_old: torch.Tensor  # [N, 3] (dependent walk) or [B, N, 3] (buffer: one per MH step)
    log_u: torch.Tensor  # [B] float64
    components: List[int]
    kT: float = 0.0
    bound0: List[float] = field(default_factory=list)  # buffer: MH energy bound for U(x) = 0, log q(x) = 0
    log_q_x: List[float] = field(default_factory=list)  # buffer: log q(x') without the auxiliary density
    finite: List[bool] = field(default_factory=list)
    flipped: List[bool] = field(default_factory=list)
    system_positions: Optional[np.ndarray] = None  # [B, N, 3] float64, System atom order
    next: int = 0  # buffer: first proposal not yet used

    def __len__(self):
        return self.x.shape[0]


@dataclass
class _Chain:
    """The current state during a move (model atom order)."""

    x: torch.Tensor
    energy: float
    signs: torch.Tensor
    log_q: Optional[float] = None  # log q(x) of a proposal-independent flow, if known
    moved: bool = False
    positions: Optional[np.ndarray] = None  # System order, float64, as it sits in the Context
    changed_outside: bool = False  # the Context's state is not the one the kernel left


@dataclass
class _Left:
    """What the kernel left in the Context after its last move: reused while nothing else changed it."""

    positions: np.ndarray
    energy: float
    groups: object
    parameters: Dict[str, float]
    log_q: Optional[float]
    signs: Optional[torch.Tensor] = None


class TimewarpKernel:
    """Timewarp moves on an OpenMM Context.

    Parameters
    ----------
    flow : str, os.PathLike or torch.nn.Module
        Shipped model name, TorchScript file, or a module honouring the flow contract.
    proposalsPerMove : int, optional
        MH steps (mode "mh") or exploration steps (mode "explore") per move; default: the model's
        recommended setting, else 16.
    batchSize : int, optional
        Proposals drawn per flow call; default: the model's recommended setting, else 16.
    mode : {"mh", "explore"}
    energyThreshold : float
        Largest energy rise (kJ/mol) kept in mode "explore".
    chiralityCheck : bool
        Reject proposals that invert a chirality centre.
    device : str or torch.device
        Torch device of the flow.
    flowThreads : int, optional
        ``torch.set_num_threads(flowThreads)`` when the kernel is prepared for a Context.
    """

    def __init__(self, flow, *, proposalsPerMove=None, batchSize=None, mode="mh", energyThreshold=300.0,
                 chiralityCheck=True, device="cpu", flowThreads=None):
        if mode not in MODES:
            raise ValueError(f"mode must be 'mh' or 'explore', not {mode!r}")
        self.device = torch.device(device)
        self.flow, self.flowInfo = load_flow(flow, self.device)
        recommended = self.flowInfo.recommended_settings
        if proposalsPerMove is None:
            proposalsPerMove = recommended.get("proposalsPerMove", DEFAULT_PROPOSALS_PER_MOVE)
        if batchSize is None:
            batchSize = recommended.get("batchSize", DEFAULT_BATCH_SIZE)
        for name, value in (("proposalsPerMove", proposalsPerMove), ("batchSize", batchSize)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.mode = mode
        self.proposalsPerMove = int(proposalsPerMove)
        self.batchSize = int(batchSize)
        self.energyThreshold = float(energyThreshold)
        self.chiralityCheck = bool(chiralityCheck)
        self.flowThreads = flowThreads
        self.independent = self.flowInfo.proposal_independent
        self.generator = torch.Generator()
        self.generator.seed()
        self._preparedFor = None
        self._reverseChunk = 1
        self._buffer: Optional[_Batch] = None
        self._left: Optional[_Left] = None
        self._pinnedMapping: Optional[np.ndarray] = None
        self.mapping: Optional[np.ndarray] = None
        self.resetStatistics()

    # ------------------------------------------------------------------ set-up
    def prepare(self, context, topology=None, temperature=None, stacklevel=2):
        """Check the Context's System against the flow, match its atoms to the model's, cache what moves need.

        Parameters
        ----------
        context : openmm.Context
        topology : openmm.app.Topology, optional
            Elements, bonds and atom names; without it they come from the System's masses and bond forces.
        temperature : float, optional
            Kelvin; a warning is given if the flow was trained at another temperature.

        Raises
        ------
        ValueError
            Constraints, a periodic box, an atom count or elements the flow does not know, or a
            molecule that is not the model's (:class:`~openmm_timewarp.matching.MoleculeMismatchError`).
        FlowContractError
            The flow's outputs break the contract, or it declares ``proposal_independent`` falsely.
        """
        if self._preparedFor is not None and self._preparedFor() is context:
            return
        system = context.getSystem()
        check_system(system)
        n = system.getNumParticles()
        info = self.flowInfo
        if info.num_atoms not in (0, n) and not info.has_graph:  # a graph gets the matching's detailed report
            raise ValueError(f"the flow {info.source} is made for {info.num_atoms} atoms, but the System has "
                             f"{n} particles. Use a model trained for this molecule or a transferable one.")
        numbers = _atoms.atomic_numbers(system, topology)
        if info.elements and not info.has_graph:
            unknown = sorted(set(numbers) - set(info.elements))
            if unknown:
                raise ValueError(f"the flow {info.source} does not know elements with atomic numbers {unknown}; "
                                 f"it knows {sorted(info.elements)}.")
        if temperature is not None and info.temperature and abs(info.temperature - temperature) > 1e-6:
            warnings.warn(f"the flow {info.source} was trained at {info.temperature:g} K; moves run at "
                          f"{temperature:g} K. Sampling stays exact in mode 'mh', but acceptance may drop.",
                          RuntimeWarning, stacklevel=stacklevel + 1)
        if context.getPlatform().getName() == "CPU" and n <= _SMALL_SYSTEM:
            warnings.warn(f"this {n}-atom System runs on the CPU platform; for molecules this small the "
                          "Reference platform is usually 10-30x faster (openmm.Platform.getPlatformByName"
                          "('Reference')).", RuntimeWarning, stacklevel=stacklevel + 1)
        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(_NM)
        if self.flowThreads is not None:
            torch.set_num_threads(int(self.flowThreads))
        bonds = _atoms.bonds(system, topology)
        if info.has_graph:
            names = None
            if topology is not None:
                names = [f"{a.residue.name}{a.residue.id}:{a.name}" for a in topology.atoms()]
            mapping = self._match(numbers, bonds, positions, names)
            model_numbers, model_bonds = list(info.atomic_numbers), list(info.bonds)
        else:
            mapping = np.arange(n, dtype=np.int64)
            model_numbers, model_bonds = numbers, bonds
        x_model = positions[mapping]
        check_flow_outputs(self.flow, info, model_numbers, x_model, self.device)
        if self.independent:
            check_independence(self.flow, info, model_numbers, x_model, self.device)
            start = torch.as_tensor(x_model, dtype=torch.float32, device=self.device).unsqueeze(0)
            numbers_t = torch.as_tensor(model_numbers, dtype=torch.int64, device=self.device)
            with flow_evaluation():
                density = float(self.flow.log_prob(start, numbers_t, start, torch.zeros_like(start))[0])
            if not math.isfinite(density):
                warnings.warn(f"the starting structure has zero density under the flow {info.source} (for example "
                              "a cis peptide bond the model never saw): moves cannot leave it. Start from an "
                              "equilibrated structure, or let MD run between moves (moveInterval > 0).",
                              RuntimeWarning, stacklevel=stacklevel + 1)
        self.mapping = mapping
        self._inverse = np.argsort(mapping)
        if self._buffer is not None and self._buffer.system_positions is None:  # restored by setState
            self._buffer.system_positions = self._buffer.x.numpy().astype(np.float64)[:, self._inverse]
        self._numbers = torch.tensor(model_numbers, dtype=torch.int64, device=self.device)
        centres = find_chirality_centres(model_numbers, model_bonds) if self.chiralityCheck else []
        self._centres = torch.as_tensor(np.asarray(centres, dtype=np.int64).reshape(-1, 4))
        self._hasVirtualSites = any(system.isVirtualSite(i) for i in range(n))
        self._numAtoms = n
        self._components = list(info.component_names)
        self._preparedFor = weakref.ref(context)

    def _match(self, numbers, bonds, positions, names):
        """The model-to-System atom mapping: pinned by a restored state, else the best candidate."""
        info = self.flowInfo
        if self._pinnedMapping is not None and check_mapping(self._pinnedMapping, info.atomic_numbers, info.bonds,
                                                             numbers, bonds):
            return self._pinnedMapping
        try:
            candidates = candidate_mappings(info.atomic_numbers, info.bonds, info.handedness, numbers, bonds,
                                            positions, names)
        except MoleculeMismatchError as error:
            raise MoleculeMismatchError(f"the System is not the molecule the flow {info.source} was trained on: "
                                        f"{error}") from None
        if len(candidates) == 1:
            return candidates[0]
        x = torch.as_tensor(np.stack([positions[c] for c in candidates]), dtype=torch.float32, device=self.device)
        numbers_model = torch.tensor(list(info.atomic_numbers), dtype=torch.int64, device=self.device)
        with flow_evaluation():
            scores = self.flow.log_prob(x, numbers_model, x, torch.zeros_like(x)).detach().cpu()
        scores = torch.where(torch.isnan(scores), torch.full_like(scores, -math.inf), scores)
        return candidates[int(torch.argmax(scores))]

    def invalidateCache(self):
        """Forget the cached energy, density and buffered proposals (after ``updateParametersInContext``)."""
        self._left = None
        self._buffer = None

    # ------------------------------------------------------------------ energies and positions
    def _setPositions(self, context, positions):
        context.setPositions(positions)
        if self._hasVirtualSites:
            context.computeVirtualSites()

    def _energy(self, context, positions, groups):
        start = time.perf_counter()
        self._setPositions(context, positions)
        # States hold energies in kJ/mol and positions in nm: read the numbers without unit conversions
        energy = context.getState(getEnergy=True, groups=groups).getPotentialEnergy()._value
        self.energyTime += time.perf_counter() - start
        return energy

    def _current(self, context, groups):
        """The chain's start: positions from the Context, U(x) and log q(x) from the cache when still valid."""
        positions = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        parameters = dict(context.getParameters())
        left = self._left
        unchanged = (left is not None and left.groups == groups and left.parameters == parameters
                     and np.array_equal(left.positions, positions))
        x = torch.from_numpy(positions[self.mapping].astype(np.float32))
        if unchanged:
            energy, log_q = left.energy, left.log_q
            signs = left.signs if left.signs is not None else chirality_signs(x, self._centres)
        else:
            start = time.perf_counter()
            energy = context.getState(getEnergy=True, groups=groups).getPotentialEnergy()._value
            self.energyTime += time.perf_counter() - start
            log_q, signs = None, chirality_signs(x, self._centres)
            self._buffer = None  # buffered proposals sit in the old rigid frame
        if not math.isfinite(energy):
            raise openmm.OpenMMException(
                f"the potential energy of the current state is {energy}: the simulation has blown up "
                "before a Timewarp move (check the time step and the starting structure).")
        return _Chain(x=x, energy=energy, signs=signs, log_q=log_q, positions=positions,
                      changed_outside=not unchanged), parameters

    # ------------------------------------------------------------------ drawing and testing proposals
    def _draw(self, chain, size, per_step_auxiliary):
        """Draw ``size`` proposals from the chain's state (and the per-proposal random numbers)."""
        n = self._numAtoms
        z = torch.randn(size, n, 6, generator=self.generator)
        v_old = torch.randn((size, n, 3) if per_step_auxiliary else (n, 3), generator=self.generator)
        log_u = torch.log(torch.rand(size, generator=self.generator, dtype=torch.float64))
        start = time.perf_counter()
        with flow_evaluation():
            x_cond = chain.x.to(self.device).expand(size, n, 3)
            x, v, log_q = self.flow.sample(x_cond, self._numbers, z.to(self.device))
            components = self.flow.component(z.to(self.device)).tolist() if self._components else [0] * size
        self.flowTime += time.perf_counter() - start
        batch = _Batch(x.detach().cpu(), v.detach().cpu(), log_q.detach().cpu(), v_old, log_u, components)
        finite = torch.isfinite(batch.x).all(dim=(1, 2)) & torch.isfinite(batch.v).all(dim=(1, 2))
        batch.finite = (finite & torch.isfinite(batch.log_q)).tolist()
        batch.flipped = chirality_changed(chain.signs, chirality_signs(batch.x, self._centres)).tolist()
        batch.system_positions = batch.x.numpy().astype(np.float64)[:, self._inverse]
        return batch

    def _log_prob(self, x_cond, x, v):
        start = time.perf_counter()
        with flow_evaluation():
            log_q = self.flow.log_prob(x_cond.to(self.device), self._numbers, x.to(self.device),
                                       v.to(self.device)).detach().cpu()
        self.flowTime += time.perf_counter() - start
        return log_q

    def _try(self, context, chain, batch, i, bound, groups):
        """Test proposal ``i`` against an energy bound; on acceptance the chain moves to it."""
        self._tested(batch, i)
        if not batch.finite[i] or not bound > -math.inf:
            return False
        if batch.flipped[i]:
            self.numChiralityRejections += 1
            return False
        new_energy = self._energy(context, batch.system_positions[i], groups)
        if not new_energy < bound:
            return False
        self.energyChange += new_energy - chain.energy
        # the chirality signs stay: proposals that change any of them are rejected
        chain.x, chain.energy, chain.moved = batch.x[i], new_energy, True
        chain.positions = batch.system_positions[i]
        if self._components:
            self.componentAccepted[batch.components[i]] += 1
        return True

    def _tested(self, batch, i):
        if self._components:
            self.componentProposals[batch.components[i]] += 1

    # ------------------------------------------------------------------ the two walks
    def _dependent_walk(self, context, chain, kT, groups):
        """Fixed-budget walk for proposals that depend on the current state (lazy reverse densities)."""
        explore = self.mode == "explore"
        n = self._numAtoms

        def reverse_log_prob(batch, begin, end):
            size = end - begin
            return self._log_prob(batch.x[begin:end], chain.x.expand(size, n, 3), batch.v_old.expand(size, n, 3))

        def first_acceptance(batch):
            size = len(batch)
            begin, chunk = 0, min(self._reverseChunk, size)
            while begin < size:
                end = min(size, begin + chunk)
                if explore:
                    bound = exploration_energy_bound(chain.energy, self.energyThreshold, end - begin)
                else:
                    bound = acceptance_energy_bound(
                        chain.energy, kT, batch.v_old, batch.v[begin:end], batch.log_q[begin:end],
                        reverse_log_prob(batch, begin, end), batch.log_u[begin:end])
                bound = bound.tolist()
                for i in range(begin, end):
                    if self._try(context, chain, batch, i, bound[i - begin], groups):
                        return i
                begin = end
                chunk *= 2
            return None

        steps, accepted, discarded = fixed_budget_walk(
            self.proposalsPerMove, self.batchSize, lambda size: self._draw(chain, size, False), first_acceptance)
        # Lazy chunks: start each batch with about one acceptance's worth of proposals.
        rate = (self.numAccepted + accepted + 1) / (self.numProposals + steps + 1)
        self._reverseChunk = max(1, min(self.batchSize, int(round(1.0 / rate))))
        return steps, accepted, discarded

    def _independent_walk(self, context, chain, kT, groups):
        """MH steps through the buffer of a proposal-independent flow: nothing drawn is wasted.

        The MH energy bound of buffered proposal i is linear in the current state's U(x) and
        log q(x) (the reverse density is log q(x) + log N(v_i), whatever the proposal): it is
        evaluated once per batch with U(x) = log q(x) = 0 by the shared rule, and shifted by
        U(x) + kT log q(x) when the proposal is tested.
        """
        explore = self.mode == "explore"
        accepted = 0
        for step in range(self.proposalsPerMove):
            if self._buffer is None or self._buffer.next >= len(self._buffer):
                # after MD (or anything else) moved the Context, the next move will likely find the
                # buffer stale again: draw only what this move needs
                size = min(self.batchSize, self.proposalsPerMove - step) if chain.changed_outside else self.batchSize
                self._buffer = self._draw(chain, size, True)
            batch = self._buffer
            if batch.kT != kT:  # new batch, or the temperature changed
                batch.kT = kT
                batch.bound0 = acceptance_energy_bound(0.0, kT, batch.v_old, batch.v, batch.log_q,
                                                       auxiliary_log_density(batch.v_old), batch.log_u).tolist()
                batch.log_q_x = (batch.log_q.double() - auxiliary_log_density(batch.v)).tolist()
            i = batch.next
            batch.next += 1
            if explore:
                bound = chain.energy + self.energyThreshold
            else:
                if chain.log_q is None:
                    x = chain.x.unsqueeze(0)
                    chain.log_q = float(self._log_prob(x, x, batch.v_old[i:i + 1])[0]
                                        - auxiliary_log_density(batch.v_old[i]))
                bound = chain.energy + kT * chain.log_q + batch.bound0[i]
            if self._try(context, chain, batch, i, bound, groups):
                accepted += 1
                chain.log_q = batch.log_q_x[i]
        return self.proposalsPerMove, accepted, 0

    # ------------------------------------------------------------------ one move
    def move(self, context, temperature, groups=-1, redrawVelocities=True):
        """One Timewarp move from the Context's current state; the Context ends in the chosen state.

        After an accepted move the velocities are redrawn from the Maxwell-Boltzmann distribution
        (the auxiliary variables of the proposal are not momenta); after a rejected one the
        Context's positions and velocities are as before.

        Parameters
        ----------
        context : openmm.Context
            Prepared with :meth:`prepare`.
        temperature : float
            Kelvin.
        groups : int or set
            Force groups whose energy is the target (as for ``Context.getState``).
        redrawVelocities : bool
            Redraw velocities after an accepted move. Velocities are independent of positions in
            the Boltzmann distribution, so keeping them is exact too; where no dynamics reads them
            (moves only), skipping the redraw saves time.

        Returns
        -------
        bool
            Whether the state changed.
        """
        chain, parameters = self._current(context, groups)
        start_positions = chain.positions
        kT = units.kT(temperature)
        walk = self._independent_walk if self.independent else self._dependent_walk
        steps, accepted, discarded = walk(context, chain, kT, groups)
        self.numMoves += 1
        self.numProposals += steps
        self.numAccepted += accepted
        self.numDiscarded += discarded
        if chain.moved:
            self._setPositions(context, chain.positions)
            if redrawVelocities:
                seed = int(torch.randint(1, 2**31 - 1, (1,), generator=self.generator))
                context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
        else:
            self._setPositions(context, start_positions)
        self._left = _Left(chain.positions, chain.energy, groups, parameters,
                           chain.log_q if self.independent else None, chain.signs)
        return chain.moved

    # ------------------------------------------------------------------ random state and statistics
    def seed(self, seed):
        """Seed the moves' generator (0: a fresh, unpredictable seed)."""
        if int(seed) == 0:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed) & 0xFFFFFFFFFFFF)

    @property
    def acceptanceRate(self):
        return self.numAccepted / self.numProposals if self.numProposals else 0.0

    def statistics(self):
        """Counters and timers as a dict (times in seconds, energy change in kJ/mol).

        A mixture flow adds ``component_proposals`` and ``component_accepted`` (name -> count).
        """
        stats = {
            "moves": self.numMoves,
            "proposals": self.numProposals,
            "accepted": self.numAccepted,
            "discarded": self.numDiscarded,
            "chirality_rejections": self.numChiralityRejections,
            "acceptance_rate": self.acceptanceRate,
            "accepted_energy_change": self.energyChange,
            "flow_time": self.flowTime,
            "energy_time": self.energyTime,
        }
        names = self.flowInfo.component_names
        if names:
            stats["component_proposals"] = dict(zip(names, self.componentProposals))
            stats["component_accepted"] = dict(zip(names, self.componentAccepted))
        return stats

    def resetStatistics(self):
        self.numMoves = self.numProposals = self.numAccepted = 0
        self.numDiscarded = self.numChiralityRejections = 0
        self.energyChange = self.flowTime = self.energyTime = 0.0
        self.componentProposals = [0] * len(self.flowInfo.component_names)
        self.componentAccepted = [0] * len(self.flowInfo.component_names)

    def getState(self):
        """Everything a bit-exact restart needs: the random generator, the buffered proposals, the
        cached energy and density, the atom mapping and the statistics (a dict; arrays as bytes)."""
        state = {
            "version": _STATE_VERSION,
            "generator": self.generator.get_state().numpy().tobytes(),
            "reverse_chunk": self._reverseChunk,
            "statistics": {k: v for k, v in self.statistics().items() if k != "acceptance_rate"},
            "mapping": None if self.mapping is None else pack_array(self.mapping),
            "left": None,
            "buffer": None,
        }
        if self._left is not None:
            left = self._left
            state["left"] = {"positions": pack_array(left.positions), "energy": left.energy,
                             "groups": sorted(left.groups) if isinstance(left.groups, (set, frozenset)) else left.groups,
                             "parameters": left.parameters, "log_q": left.log_q}
        if self._buffer is not None:
            b = self._buffer
            state["buffer"] = {name: pack_array(getattr(b, name).numpy()) for name in ("x", "v", "log_q", "v_old", "log_u")}
            state["buffer"].update(components=b.components, finite=b.finite, flipped=b.flipped, next=b.next)
        return state

    def setState(self, state):
        """Restore what :meth:`getState` returned (extra statistics keys are ignored)."""
        if not isinstance(state, dict) or state.get("version") not in (1, _STATE_VERSION):
            raise ValueError(f"not a Timewarp move state (version {_STATE_VERSION})")
        self.generator.set_state(torch.frombuffer(bytearray(state["generator"]), dtype=torch.uint8))
        self._reverseChunk = int(state["reverse_chunk"])
        self.setStatistics(state["statistics"])
        self._left, self._buffer = None, None
        if state.get("mapping") is not None:
            self._pinnedMapping = unpack_array(state["mapping"])
            self._preparedFor = None  # match again, honouring the restored mapping
        left = state.get("left")
        if left is not None:
            groups = left["groups"]
            self._left = _Left(unpack_array(left["positions"]), float(left["energy"]),
                               set(groups) if isinstance(groups, list) else groups, dict(left["parameters"]),
                               left["log_q"])
        buffer = state.get("buffer")
        if buffer is not None:
            tensors = {name: torch.from_numpy(unpack_array(buffer[name]).copy())
                       for name in ("x", "v", "log_q", "v_old", "log_u")}
            self._buffer = _Batch(**tensors, components=list(buffer["components"]), finite=list(buffer["finite"]),
                                  flipped=list(buffer["flipped"]), next=int(buffer["next"]))

    def setStatistics(self, stats):
        """Set the counters and timers (as :meth:`statistics` gives them; missing timers count as 0)."""
        self.numMoves, self.numProposals, self.numAccepted = stats["moves"], stats["proposals"], stats["accepted"]
        self.numDiscarded = stats.get("discarded", 0)
        self.numChiralityRejections = stats.get("chirality_rejections", 0)
        self.energyChange = stats.get("accepted_energy_change", 0.0)
        self.flowTime, self.energyTime = stats.get("flow_time", 0.0), stats.get("energy_time", 0.0)
        names = self.flowInfo.component_names
        self.componentProposals = [stats.get("component_proposals", {}).get(n, 0) for n in names]
        self.componentAccepted = [stats.get("component_accepted", {}).get(n, 0) for n in names]


def pack_array(array) -> dict:
    """An array as a JSON-friendly dict of dtype, shape and raw bytes."""
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}


def unpack_array(packed) -> np.ndarray:
    """The array :func:`pack_array` packed."""
    return np.frombuffer(packed["data"], dtype=np.dtype(packed["dtype"])).reshape(packed["shape"])


def check_independence(module, info, atomic_numbers, positions, device="cpu", tolerance=1e-4):
    """Check that a flow declaring ``proposal_independent`` ignores the state it conditions on.

    A proposal drawn from ``positions`` is itself a state the chain may move to; drawing with the
    same noise from it and from ``positions`` must give the same proposals (to ``tolerance`` nm),
    the same log q, and the same density of a given structure.

    Raises
    ------
    FlowContractError
    """
    n = len(atomic_numbers)
    generator = torch.Generator().manual_seed(1234)
    z1, z2 = (torch.randn(2, n, 6, generator=generator).to(device) for _ in range(2))
    numbers = torch.as_tensor(list(atomic_numbers), dtype=torch.int64, device=device)
    x0 = torch.as_tensor(np.asarray(positions), dtype=torch.float32, device=device).reshape(1, n, 3)
    with flow_evaluation():
        moved, _, log_q = module.sample(x0.expand(2, n, 3), numbers, z1)
        other = moved[:1] if bool(torch.isfinite(log_q[0])) else moved[1:]
        a = module.sample(x0.expand(2, n, 3), numbers, z2)
        b = module.sample(other.expand(2, n, 3), numbers, z2)
        density_a = module.log_prob(x0.expand(2, n, 3), numbers, a[0], a[1])
        density_b = module.log_prob(other.expand(2, n, 3), numbers, a[0], a[1])
    same = (torch.allclose(a[0], b[0], atol=tolerance) and torch.allclose(a[1], b[1], atol=tolerance)
            and torch.allclose(a[2], b[2], atol=1e-3, rtol=1e-5) and torch.allclose(density_a, density_b, atol=1e-3, rtol=1e-5))
    if not same:
        raise FlowContractError(
            f"{info.source} declares proposal_independent, but its proposals or densities change with the state it "
            "conditions on. Export it with proposal_independent = False.")


def encode_state(value):
    """A state dict with every bytes value as base64 text (JSON-ready); :func:`decode_state` reverses it."""
    if isinstance(value, bytes):
        return {"__base64__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {key: encode_state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_state(item) for item in value]
    return value


def decode_state(value):
    """Reverse :func:`encode_state`."""
    if isinstance(value, dict):
        if set(value) == {"__base64__"}:
            return base64.b64decode(value["__base64__"])
        return {key: decode_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_state(item) for item in value]
    return value
