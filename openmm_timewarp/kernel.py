"""TimewarpKernel: one Timewarp move on an OpenMM Context, shared by the integrator and the openmmtools move.

The kernel owns the flow, the moves' random generator and the statistics. It reads the current
state from a Context, walks ``proposalsPerMove`` MH (or exploration) steps with the acceptance rule
of :mod:`openmm_timewarp.mcmc`, evaluates energies with the same Context, and leaves the chosen
positions in it. It never integrates: whoever holds the kernel decides when moves happen.
"""

import math
import time
import warnings
import weakref

import numpy as np
import torch
import openmm
from openmm import unit

from . import atoms as _atoms
from .chirality import chirality_changed, chirality_signs, find_chirality_centres
from .contract import check_flow_outputs, load_flow
from .mcmc import acceptance_energy_bound, exploration_energy_bound, fixed_budget_walk

MODES = ("mh", "explore")
# Systems at most this large run faster on the Reference platform than on CPU.
_SMALL_SYSTEM = 200
_STATE_VERSION = 1

_NM = unit.nanometer
_KJ = unit.kilojoule_per_mole
_R = (unit.MOLAR_GAS_CONSTANT_R).value_in_unit(_KJ / unit.kelvin)


def quantity_value(quantity, target, name):
    """``quantity`` in ``target`` units as a float; a bare number is taken to be in ``target`` already.

    Raises
    ------
    TypeError
        The quantity's unit is not compatible with ``target``.
    """
    if unit.is_quantity(quantity):
        if not quantity.unit.is_compatible(target):
            raise TypeError(f"{name} must be in units compatible with {target}, got {quantity.unit}")
        return quantity.value_in_unit(target)
    return float(quantity)


class _Batch:
    """Proposals drawn from one state, with what the acceptance test needs."""

    __slots__ = ("x", "v", "log_q", "v_old", "log_u")

    def __init__(self, x, v, log_q, v_old, log_u):
        self.x, self.v, self.log_q, self.v_old, self.log_u = x, v, log_q, v_old, log_u


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


class TimewarpKernel:
    """Timewarp moves on an OpenMM Context.

    Parameters
    ----------
    flow : str, os.PathLike or torch.nn.Module
        Shipped model name, TorchScript file, or a module honouring the flow contract.
    proposalsPerMove : int
        MH steps (mode "mh") or exploration steps (mode "explore") per move.
    batchSize : int
        Proposals drawn per flow call.
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

    def __init__(self, flow, *, proposalsPerMove, batchSize, mode, energyThreshold, chiralityCheck=True,
                 device="cpu", flowThreads=None):
        if mode not in MODES:
            raise ValueError(f"mode must be 'mh' or 'explore', not {mode!r}")
        for name, value in (("proposalsPerMove", proposalsPerMove), ("batchSize", batchSize)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.mode = mode
        self.proposalsPerMove = int(proposalsPerMove)
        self.batchSize = int(batchSize)
        self.energyThreshold = float(energyThreshold)
        self.chiralityCheck = bool(chiralityCheck)
        self.device = torch.device(device)
        self.flowThreads = flowThreads
        self.flow, self.flowInfo = load_flow(flow, self.device)
        self.generator = torch.Generator()
        self.generator.seed()
        self._preparedFor = None
        self._reverseChunk = 1
        self.resetStatistics()

    # ------------------------------------------------------------------ set-up
    def prepare(self, context, topology=None, temperature=None, stacklevel=2):
        """Check the Context's System against the flow and cache what moves need.

        Parameters
        ----------
        context : openmm.Context
        topology : openmm.app.Topology, optional
            Elements and bonds; without it they come from the System's masses and bond forces.
        temperature : float, optional
            Kelvin; a warning is given if the flow was trained at another temperature.

        Raises
        ------
        ValueError
            Constraints, a periodic box, or an atom count or elements the flow does not know.
        """
        if self._preparedFor is not None and self._preparedFor() is context:
            return
        system = context.getSystem()
        check_system(system)
        n = system.getNumParticles()
        info = self.flowInfo
        if info.num_atoms not in (0, n):
            raise ValueError(f"the flow {info.source} is made for {info.num_atoms} atoms, but the System has "
                             f"{n} particles. Use a model trained for this molecule or a transferable one.")
        numbers = _atoms.atomic_numbers(system, topology)
        if info.elements:
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
        check_flow_outputs(self.flow, info, numbers, positions, self.device)
        self._numbers = torch.tensor(numbers, dtype=torch.int64, device=self.device)
        centres = find_chirality_centres(numbers, _atoms.bonds(system, topology)) if self.chiralityCheck else []
        self._centres = torch.as_tensor(np.asarray(centres, dtype=np.int64).reshape(-1, 4))
        self._hasVirtualSites = any(system.isVirtualSite(i) for i in range(n))
        self._numAtoms = n
        self._preparedFor = weakref.ref(context)

    # ------------------------------------------------------------------ one move
    def _setPositions(self, context, positions):
        context.setPositions(positions)
        if self._hasVirtualSites:
            context.computeVirtualSites()

    def _energy(self, context, positions, groups):
        start = time.perf_counter()
        self._setPositions(context, positions)
        energy = context.getState(getEnergy=True, groups=groups).getPotentialEnergy().value_in_unit(_KJ)
        self.energyTime += time.perf_counter() - start
        return energy

    def move(self, context, temperature, groups=-1):
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

        Returns
        -------
        bool
            Whether the state changed.
        """
        state = context.getState(getPositions=True, getEnergy=True, groups=groups)
        start_positions = state.getPositions(asNumpy=True).value_in_unit(_NM)
        energy = state.getPotentialEnergy().value_in_unit(_KJ)
        if not math.isfinite(energy):
            raise openmm.OpenMMException(
                f"the potential energy of the current state is {energy}: the simulation has blown up "
                "before a Timewarp move (check the time step and the starting structure).")
        kT = _R * temperature
        current = {"x": torch.from_numpy(start_positions.astype(np.float32)), "energy": energy, "moved": False}
        current["signs"] = chirality_signs(current["x"], self._centres)
        explore = self.mode == "explore"
        n = self._numAtoms

        def draw_batch(size):
            z = torch.randn(size, n, 6, generator=self.generator)
            v_old = torch.randn(n, 3, generator=self.generator)
            log_u = torch.log(torch.rand(size, generator=self.generator, dtype=torch.float64))
            start = time.perf_counter()
            with torch.no_grad():
                x_cond = current["x"].to(self.device).expand(size, n, 3)
                x, v, log_q = self.flow.sample(x_cond, self._numbers, z.to(self.device))
            self.flowTime += time.perf_counter() - start
            return _Batch(x.detach().cpu(), v.detach().cpu(), log_q.detach().cpu(), v_old, log_u)

        def reverse_log_prob(batch, begin, end):
            start = time.perf_counter()
            size = end - begin
            with torch.no_grad():
                log_q = self.flow.log_prob(
                    batch.x[begin:end].to(self.device), self._numbers,
                    current["x"].to(self.device).expand(size, n, 3), batch.v_old.to(self.device).expand(size, n, 3),
                ).detach().cpu()
            self.flowTime += time.perf_counter() - start
            return log_q

        def first_acceptance(batch):
            size = batch.x.shape[0]
            finite = torch.isfinite(batch.x).all(dim=(1, 2)) & torch.isfinite(batch.v).all(dim=(1, 2))
            finite &= torch.isfinite(batch.log_q)
            flipped = chirality_changed(current["signs"], chirality_signs(batch.x, self._centres))
            finite, flipped = finite.tolist(), flipped.tolist()
            begin, chunk = 0, min(self._reverseChunk, size)
            while begin < size:
                end = min(size, begin + chunk)
                if explore:
                    bound = exploration_energy_bound(current["energy"], self.energyThreshold, end - begin)
                else:
                    bound = acceptance_energy_bound(
                        current["energy"], kT, batch.v_old, batch.v[begin:end], batch.log_q[begin:end],
                        reverse_log_prob(batch, begin, end), batch.log_u[begin:end])
                bound = bound.tolist()
                for i in range(begin, end):
                    if not finite[i] or not bound[i - begin] > -math.inf:
                        continue
                    if flipped[i]:
                        self.numChiralityRejections += 1
                        continue
                    new_energy = self._energy(context, batch.x[i].numpy().astype(np.float64), groups)
                    if new_energy < bound[i - begin]:
                        self.energyChange += new_energy - current["energy"]
                        current.update(x=batch.x[i].clone(), energy=new_energy, moved=True)
                        current["signs"] = chirality_signs(current["x"], self._centres)
                        return i
                begin = end
                chunk *= 2
            return None

        steps, accepted, discarded = fixed_budget_walk(self.proposalsPerMove, self.batchSize, draw_batch,
                                                       first_acceptance)
        # Lazy chunks: start each batch with about one acceptance's worth of proposals.
        rate = (self.numAccepted + accepted + 1) / (self.numProposals + steps + 1)
        self._reverseChunk = max(1, min(self.batchSize, int(round(1.0 / rate))))
        self.numMoves += 1
        self.numProposals += steps
        self.numAccepted += accepted
        self.numDiscarded += discarded
        if current["moved"]:
            self._setPositions(context, current["x"].numpy().astype(np.float64))
            seed = int(torch.randint(1, 2**31 - 1, (1,), generator=self.generator))
            context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
        else:
            self._setPositions(context, start_positions)
        return current["moved"]

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
        """Counters and timers as a dict (times in seconds, energy change in kJ/mol)."""
        return {
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

    def resetStatistics(self):
        self.numMoves = self.numProposals = self.numAccepted = 0
        self.numDiscarded = self.numChiralityRejections = 0
        self.energyChange = self.flowTime = self.energyTime = 0.0

    def getState(self):
        """The random generator, the lazy-evaluation chunk and the statistics (a dict; bytes for the generator)."""
        return {
            "version": _STATE_VERSION,
            "generator": self.generator.get_state().numpy().tobytes(),
            "reverse_chunk": self._reverseChunk,
            "statistics": {k: v for k, v in self.statistics().items() if k != "acceptance_rate"},
        }

    def setState(self, state):
        """Restore what :meth:`getState` returned (extra statistics keys are ignored)."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"not a Timewarp move state (version {_STATE_VERSION})")
        self.generator.set_state(torch.frombuffer(bytearray(state["generator"]), dtype=torch.uint8))
        self._reverseChunk = int(state["reverse_chunk"])
        stats = state["statistics"]
        self.numMoves, self.numProposals, self.numAccepted = stats["moves"], stats["proposals"], stats["accepted"]
        self.numDiscarded, self.numChiralityRejections = stats["discarded"], stats["chirality_rejections"]
        self.energyChange, self.flowTime = stats["accepted_energy_change"], stats["flow_time"]
        self.energyTime = stats["energy_time"]
