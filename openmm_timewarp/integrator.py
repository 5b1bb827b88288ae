"""TimewarpIntegrator: Langevin MD interleaved with Timewarp moves, as a drop-in OpenMM integrator."""

import gc
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

# Defaults (see README, "Choosing the move settings").
DEFAULT_MOVE_INTERVAL = 100
DEFAULT_PROPOSALS_PER_MOVE = 16
DEFAULT_BATCH_SIZE = 16
DEFAULT_ENERGY_THRESHOLD = 300.0  # kJ/mol
# Systems at most this large run faster on the Reference platform than on CPU.
_SMALL_SYSTEM = 200

_NM = unit.nanometer
_KJ = unit.kilojoule_per_mole
_R = (unit.MOLAR_GAS_CONSTANT_R).value_in_unit(_KJ / unit.kelvin)


def _value(quantity, target, name):
    if unit.is_quantity(quantity):
        if not quantity.unit.is_compatible(target):
            raise TypeError(f"{name} must be in units compatible with {target}, got {quantity.unit}")
        return quantity.value_in_unit(target)
    return float(quantity)


def _find_context(integrator):
    """The Context this integrator is bound to (Context stores it as ``_integrator``), or None."""
    for referrer in gc.get_referrers(integrator):
        if isinstance(referrer, openmm.Context) and getattr(referrer, "_integrator", None) is integrator:
            return referrer
        if isinstance(referrer, dict) and referrer.get("_integrator") is integrator:
            for owner in gc.get_referrers(referrer):
                if isinstance(owner, openmm.Context) and getattr(owner, "__dict__", None) is referrer:
                    return owner
    return None


class _Batch:
    """Proposals drawn from one state, with what the acceptance test needs."""

    __slots__ = ("x", "v", "log_q", "v_old", "log_u")

    def __init__(self, x, v, log_q, v_old, log_u):
        self.x, self.v, self.log_q, self.v_old, self.log_u = x, v, log_q, v_old, log_u


class TimewarpIntegrator(openmm.LangevinMiddleIntegrator):
    """LangevinMiddleIntegrator with Timewarp moves: learned long-time-step proposals tested by MH.

    ``step(n)`` advances the Context's step count by exactly ``n``. With ``moveInterval = m >= 1``
    it runs Langevin MD and performs a Timewarp move whenever the step count reaches a multiple
    of ``m``. With ``moveInterval = 0`` each step is one Timewarp move and no MD runs (the
    Context's time does not advance; reporters' time and ns/day then count MD time only).

    In mode ``"mh"`` a move spends exactly ``proposalsPerMove`` Metropolis-Hastings steps in the
    augmented space (x, v), so the Boltzmann distribution of the System at the integrator's
    temperature is left invariant. In mode ``"explore"`` a move takes ``proposalsPerMove``
    steps that keep a proposal unless the energy rises by more than ``energyThreshold``: fast
    at finding metastable states, but NOT Boltzmann sampling.

    Parameters
    ----------
    temperature : openmm.unit.Quantity or float
        Temperature (K), as for LangevinMiddleIntegrator.
    frictionCoeff : openmm.unit.Quantity or float
        Friction coefficient (1/ps).
    stepSize : openmm.unit.Quantity or float
        MD time step (ps).
    flow : str, os.PathLike or torch.nn.Module
        The proposal: a shipped model name (:func:`openmm_timewarp.list_models`), a TorchScript
        file, or a module honouring the flow contract (version 1).
    moveInterval : int
        MD steps between moves (0: moves only).
    proposalsPerMove : int
        MH steps (mode "mh") or exploration steps (mode "explore") per move.
    batchSize : int
        Proposals drawn per flow call.
    mode : {"mh", "explore"}
    energyThreshold : openmm.unit.Quantity or float
        Largest energy rise (kJ/mol) kept in mode "explore".
    topology : openmm.app.Topology, optional
        Gives elements and bonds; without it they come from the System's masses and bond forces.
    chiralityCheck : bool
        Reject proposals that invert a chirality centre.
    device : str
        Torch device for the flow ("cpu", "cuda"); the Context may use any platform.
    flowThreads : int, optional
        If given, ``torch.set_num_threads(flowThreads)`` when the integrator binds (process-wide).
    """

    def __init__(
        self,
        temperature,
        frictionCoeff,
        stepSize,
        *,
        flow,
        moveInterval=DEFAULT_MOVE_INTERVAL,
        proposalsPerMove=DEFAULT_PROPOSALS_PER_MOVE,
        batchSize=DEFAULT_BATCH_SIZE,
        mode="mh",
        energyThreshold=DEFAULT_ENERGY_THRESHOLD * _KJ,
        topology=None,
        chiralityCheck=True,
        device="cpu",
        flowThreads=None,
    ):
        super().__init__(temperature, frictionCoeff, stepSize)
        if mode not in ("mh", "explore"):
            raise ValueError(f"mode must be 'mh' or 'explore', not {mode!r}")
        for name, value, least in (
            ("moveInterval", moveInterval, 0),
            ("proposalsPerMove", proposalsPerMove, 1),
            ("batchSize", batchSize, 1),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        self._mode = mode
        self._moveInterval = int(moveInterval)
        self._proposalsPerMove = int(proposalsPerMove)
        self._batchSize = int(batchSize)
        self._energyThreshold = _value(energyThreshold, _KJ, "energyThreshold")
        self._topology = topology
        self._chiralityCheck = bool(chiralityCheck)
        self._device = torch.device(device)
        self._flowThreads = flowThreads
        self._flow, self._flowInfo = load_flow(flow, self._device)
        self._generator = torch.Generator()
        self._generator.seed()
        self._contextRef = None
        self._reverseChunk = 1
        self.resetStatistics()

    # ------------------------------------------------------------------ binding
    def bind(self, context):
        """Bind to ``context`` (the Context created with this integrator) and check the System.

        Called automatically by the first ``step``; call it yourself to get the checks earlier.

        Raises
        ------
        ValueError
            The Context uses another integrator, or the System is unsupported (constraints,
            periodic box) or does not match the flow (atom count, elements).
        """
        if getattr(context, "_integrator", self) is not self:
            raise ValueError("this Context was created with another integrator; a TimewarpIntegrator "
                             "binds only to the Context created with it.")
        if self._contextRef is not None:
            bound = self._contextRef()
            if bound is context:
                return
            if bound is not None:
                raise ValueError("this TimewarpIntegrator is already bound to another Context.")
        system = context.getSystem()
        n = system.getNumParticles()
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
        info = self._flowInfo
        if info.num_atoms not in (0, n):
            raise ValueError(f"the flow {info.source} is made for {info.num_atoms} atoms, but the System has "
                             f"{n} particles. Use a model trained for this molecule or a transferable one.")
        numbers = _atoms.atomic_numbers(system, self._topology)
        if info.elements:
            unknown = sorted(set(numbers) - set(info.elements))
            if unknown:
                raise ValueError(f"the flow {info.source} does not know elements with atomic numbers {unknown}; "
                                 f"it knows {sorted(info.elements)}.")
        temperature = self.getTemperature().value_in_unit(unit.kelvin)
        if info.temperature and abs(info.temperature - temperature) > 1e-6:
            warnings.warn(f"the flow {info.source} was trained at {info.temperature:g} K; the integrator runs at "
                          f"{temperature:g} K. Sampling stays exact in mode 'mh', but acceptance may drop.",
                          RuntimeWarning, stacklevel=3)
        if context.getPlatform().getName() == "CPU" and n <= _SMALL_SYSTEM:
            warnings.warn(f"this {n}-atom System runs on the CPU platform; for molecules this small the "
                          "Reference platform is usually 10-30x faster (openmm.Platform.getPlatformByName"
                          "('Reference')).", RuntimeWarning, stacklevel=3)
        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(_NM)
        if self._flowThreads is not None:
            torch.set_num_threads(int(self._flowThreads))
        check_flow_outputs(self._flow, info, numbers, positions, self._device)
        self._numbers = torch.tensor(numbers, dtype=torch.int64, device=self._device)
        centres = find_chirality_centres(numbers, _atoms.bonds(system, self._topology)) if self._chiralityCheck else []
        self._centres = torch.as_tensor(np.asarray(centres, dtype=np.int64).reshape(-1, 4))
        self._hasVirtualSites = any(system.isVirtualSite(i) for i in range(n))
        self._numAtoms = n
        self._groups = self.getIntegrationForceGroups()
        self._contextRef = weakref.ref(context)

    def _context(self):
        context = self._contextRef() if self._contextRef is not None else None
        if context is None:
            context = _find_context(self)
            if context is None:
                raise RuntimeError("this TimewarpIntegrator is not bound to a Context. Create "
                                   "openmm.Context(system, integrator) or app.Simulation first. Inside a "
                                   "CompoundIntegrator the Timewarp moves cannot run.")
            self._contextRef = None
            self.bind(context)
        return context

    # ------------------------------------------------------------------ stepping
    def step(self, steps):
        """Advance by ``steps`` steps: MD with a move every ``moveInterval`` steps, or moves only."""
        steps = int(steps)
        if steps <= 0:
            return
        context = self._context()
        if self._moveInterval == 0:
            for _ in range(steps):
                self._move(context)
                context.setStepCount(context.getStepCount() + 1)
            return
        remaining = steps
        while remaining > 0:
            count = context.getStepCount()
            chunk = min(self._moveInterval - count % self._moveInterval, remaining)
            start = time.perf_counter()
            super().step(chunk)
            self._mdTime += time.perf_counter() - start
            remaining -= chunk
            if (count + chunk) % self._moveInterval == 0:
                self._move(context)

    def _energy(self, context, positions):
        start = time.perf_counter()
        context.setPositions(positions)
        if self._hasVirtualSites:
            context.computeVirtualSites()
        energy = context.getState(getEnergy=True, groups=self._groups).getPotentialEnergy().value_in_unit(_KJ)
        self._energyTime += time.perf_counter() - start
        return energy

    def _move(self, context):
        """One Timewarp move from the Context's current state."""
        state = context.getState(getPositions=True, getEnergy=True, groups=self._groups)
        start_positions = state.getPositions(asNumpy=True).value_in_unit(_NM)
        energy = state.getPotentialEnergy().value_in_unit(_KJ)
        if not math.isfinite(energy):
            raise openmm.OpenMMException(
                f"the potential energy of the current state is {energy}: the simulation has blown up "
                "before a Timewarp move (check the time step and the starting structure).")
        kT = _R * self.getTemperature().value_in_unit(unit.kelvin)
        current = {"x": torch.from_numpy(start_positions.astype(np.float32)), "energy": energy, "moved": False}
        current["signs"] = chirality_signs(current["x"], self._centres)
        explore = self._mode == "explore"

        def draw_batch(size):
            n = self._numAtoms
            z = torch.randn(size, n, 6, generator=self._generator)
            v_old = torch.randn(n, 3, generator=self._generator)
            log_u = torch.log(torch.rand(size, generator=self._generator, dtype=torch.float64))
            start = time.perf_counter()
            with torch.no_grad():
                x_cond = current["x"].to(self._device).expand(size, n, 3)
                x, v, log_q = self._flow.sample(x_cond, self._numbers, z.to(self._device))
            self._flowTime += time.perf_counter() - start
            return _Batch(x.detach().cpu(), v.detach().cpu(), log_q.detach().cpu(), v_old, log_u)

        def reverse_log_prob(batch, begin, end):
            start = time.perf_counter()
            with torch.no_grad():
                size = end - begin
                n = self._numAtoms
                log_q = self._flow.log_prob(
                    batch.x[begin:end].to(self._device), self._numbers,
                    current["x"].to(self._device).expand(size, n, 3), batch.v_old.to(self._device).expand(size, n, 3),
                ).detach().cpu()
            self._flowTime += time.perf_counter() - start
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
                    bound = exploration_energy_bound(current["energy"], self._energyThreshold, end - begin)
                else:
                    bound = acceptance_energy_bound(
                        current["energy"], kT, batch.v_old, batch.v[begin:end], batch.log_q[begin:end],
                        reverse_log_prob(batch, begin, end), batch.log_u[begin:end])
                bound = bound.tolist()
                for i in range(begin, end):
                    if not finite[i] or not bound[i - begin] > -math.inf:
                        continue
                    if flipped[i]:
                        self._numChiralityRejections += 1
                        continue
                    new_energy = self._energy(context, batch.x[i].numpy().astype(np.float64))
                    if new_energy < bound[i - begin]:
                        self._energyChange += new_energy - current["energy"]
                        current.update(x=batch.x[i].clone(), energy=new_energy, moved=True)
                        current["signs"] = chirality_signs(current["x"], self._centres)
                        return i
                begin = end
                chunk *= 2
            return None

        budget, batch_size = self._proposalsPerMove, self._batchSize
        steps, accepted, discarded = fixed_budget_walk(budget, batch_size, draw_batch, first_acceptance)
        # Lazy chunks: start each batch with about one acceptance's worth of proposals.
        rate = (self._numAccepted + accepted + 1) / (self._numProposals + steps + 1)
        self._reverseChunk = max(1, min(batch_size, int(round(1.0 / rate))))
        self._numMoves += 1
        self._numProposals += steps
        self._numAccepted += accepted
        self._numDiscarded += discarded
        if current["moved"]:
            context.setPositions(current["x"].numpy().astype(np.float64))
            if self._hasVirtualSites:
                context.computeVirtualSites()
            seed = int(torch.randint(1, 2**31 - 1, (1,), generator=self._generator))
            context.setVelocitiesToTemperature(self.getTemperature(), seed)
        else:
            context.setPositions(start_positions)
            if self._hasVirtualSites:
                context.computeVirtualSites()

    # ------------------------------------------------------------------ settings and statistics
    def setRandomNumberSeed(self, seed):
        """Seed both the Langevin noise and the Timewarp moves (0 picks a fresh seed for the moves).

        As for OpenMM's integrators, call it before the Context is created for the MD part to use it.
        """
        super().setRandomNumberSeed(seed)
        if int(seed) == 0:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed) & 0xFFFFFFFFFFFF)

    def getMode(self):
        return self._mode

    def getMoveInterval(self):
        return self._moveInterval

    def setMoveInterval(self, moveInterval):
        if int(moveInterval) < 0:
            raise ValueError("moveInterval must be >= 0")
        self._moveInterval = int(moveInterval)

    def getProposalsPerMove(self):
        return self._proposalsPerMove

    def getBatchSize(self):
        return self._batchSize

    def getFlowInfo(self):
        """The :class:`~openmm_timewarp.contract.FlowInfo` of the flow in use."""
        return self._flowInfo

    def getNumMoves(self):
        """Timewarp moves performed since the last :meth:`resetStatistics`."""
        return self._numMoves

    def getNumProposals(self):
        """MH (or exploration) steps spent."""
        return self._numProposals

    def getNumAccepted(self):
        return self._numAccepted

    def getNumDiscarded(self):
        """Proposals drawn but never tested (after an earlier acceptance in their batch)."""
        return self._numDiscarded

    def getNumChiralityRejections(self):
        return self._numChiralityRejections

    def getAcceptanceRate(self):
        """Accepted / MH steps spent (0.0 before any move)."""
        return self._numAccepted / self._numProposals if self._numProposals else 0.0

    def getStatistics(self):
        """All counters and timers as a dict (times in seconds, energy change in kJ/mol)."""
        return {
            "moves": self._numMoves,
            "proposals": self._numProposals,
            "accepted": self._numAccepted,
            "discarded": self._numDiscarded,
            "chirality_rejections": self._numChiralityRejections,
            "acceptance_rate": self.getAcceptanceRate(),
            "accepted_energy_change": self._energyChange,
            "flow_time": self._flowTime,
            "energy_time": self._energyTime,
            "md_time": self._mdTime,
        }

    def resetStatistics(self):
        self._numMoves = self._numProposals = self._numAccepted = 0
        self._numDiscarded = self._numChiralityRejections = 0
        self._energyChange = self._flowTime = self._energyTime = self._mdTime = 0.0

    # ------------------------------------------------------------------ restart
    def getTimewarpState(self):
        """The integrator's own state: the moves' random generator, counters and timers (a dict).

        Together with OpenMM's checkpoint it makes a restart bit-exact on the Reference platform;
        see :func:`openmm_timewarp.save_checkpoint`.
        """
        return {
            "version": 1,
            "generator": self._generator.get_state().numpy().tobytes(),
            "reverse_chunk": self._reverseChunk,
            "statistics": {k: v for k, v in self.getStatistics().items() if k != "acceptance_rate"},
        }

    def setTimewarpState(self, state):
        """Restore what :meth:`getTimewarpState` returned."""
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("not a TimewarpIntegrator state (version 1)")
        self._generator.set_state(torch.frombuffer(bytearray(state["generator"]), dtype=torch.uint8))
        self._reverseChunk = int(state["reverse_chunk"])
        stats = state["statistics"]
        self._numMoves, self._numProposals, self._numAccepted = stats["moves"], stats["proposals"], stats["accepted"]
        self._numDiscarded, self._numChiralityRejections = stats["discarded"], stats["chirality_rejections"]
        self._energyChange, self._flowTime = stats["accepted_energy_change"], stats["flow_time"]
        self._energyTime, self._mdTime = stats["energy_time"], stats["md_time"]

    # ------------------------------------------------------------------ unsupported copies
    def _refuse_copy(self, *args):
        raise TypeError(
            "a TimewarpIntegrator cannot be copied or pickled: its flow and random state would be lost "
            "(XmlSerializer writes only the LangevinMiddleIntegrator part). Create a new TimewarpIntegrator "
            "with the same arguments instead; to save and restore a run, use openmm_timewarp.save_checkpoint "
            "and load_checkpoint.")

    __copy__ = __deepcopy__ = __getstate__ = __reduce__ = __reduce_ex__ = _refuse_copy
