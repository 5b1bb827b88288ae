"""TimewarpIntegrator: Langevin MD interleaved with Timewarp moves, as a drop-in OpenMM integrator."""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
import dataclasses
import gc
import time
import weakref

import numpy as np
import openmm
from openmm import unit

from .kernel import TimewarpKernel
from .kernel.core import _positive_int
from .units import in_unit

# Defaults where neither the caller nor the model says (docs/integrator.md lists how they are chosen).
DEFAULT_MOVE_INTERVAL = 100
DEFAULT_ENERGY_THRESHOLD = 300.0  # kJ/mol

_KJ = unit.kilojoule_per_mole


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

    The full reference (move schedule, statistics, checks made when binding, limitations) is
    ``docs/integrator.md``.

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
        file, or a module honouring the flow contract (version 1, ``docs/contract.md``).
    moveInterval : int, optional
        MD steps between moves (0: moves only). Default: the model's recommended setting
        (``getFlowInfo().recommended_settings``), else 100.
    proposalsPerMove : int, optional
        MH steps (mode "mh") or exploration steps (mode "explore") per move. Default: the
        model's recommended setting (``proposalsPerMoveMixed`` if it has one and
        ``moveInterval > 0``, else ``proposalsPerMove``), else 16.
    batchSize : int, optional
        Proposals drawn per flow call. Default: the model's recommended setting, else 16.
    mode : {"mh", "explore"}
    energyThreshold : openmm.unit.Quantity or float
        Largest energy rise (kJ/mol) kept in mode "explore".
    topology : openmm.app.Topology, optional
        Gives elements, bonds and atom names; without it they come from the System's masses and
        bond forces. A model that carries its molecular graph is matched to these atoms whatever
        their order (see :meth:`getAtomMapping`).
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
        moveInterval=None,
        proposalsPerMove=None,
        batchSize=None,
        mode="mh",
        energyThreshold=DEFAULT_ENERGY_THRESHOLD * _KJ,
        topology=None,
        chiralityCheck=True,
        device="cpu",
        flowThreads=None,
    ):
        super().__init__(temperature, frictionCoeff, stepSize)
        self._topology = topology
        self._kernel = TimewarpKernel(
            flow, proposalsPerMove=proposalsPerMove, batchSize=batchSize, mode=mode,
            energyThreshold=in_unit(energyThreshold, _KJ, "energyThreshold"), chiralityCheck=chiralityCheck,
            device=device, flowThreads=flowThreads)
        if moveInterval is None:
            moveInterval = self._kernel.flowInfo.recommended_settings.get("moveInterval", DEFAULT_MOVE_INTERVAL)
        if not isinstance(moveInterval, (int, np.integer)) or isinstance(moveInterval, bool) or moveInterval < 0:
            raise ValueError(f"moveInterval must be an integer >= 0, got {moveInterval!r}")
        self._moveInterval = int(moveInterval)
        mixed = self._kernel.flowInfo.recommended_settings.get("proposalsPerMoveMixed")
        if proposalsPerMove is None and self._moveInterval > 0 and mixed is not None:
            self._kernel.proposalsPerMove = _positive_int("proposalsPerMoveMixed", mixed)
        self._contextRef = None
        self._mdTime = 0.0

    # ------------------------------------------------------------------ binding
    def bind(self, context):
        """Bind to ``context`` (the Context created with this integrator) and check the System.

        Called automatically by the first ``step``; call it yourself to get the checks earlier.

        Raises
        ------
        ValueError
            The Context uses another integrator, or the System is unsupported (constraints the flow
            cannot hold, see ``docs/constraints.md``; a periodic box) or does not match the flow
            (atom count, elements).
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
        self._kernel.prepare(context, self._topology, self.getTemperature().value_in_unit(unit.kelvin), stacklevel=3)
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

    def _move(self, context):
        temperature = self.getTemperature().value_in_unit(unit.kelvin)
        self._kernel.prepare(context, self._topology, temperature)  # at once unless a restored state asks to re-match
        # the target is what MD integrates: the force groups as they are now, not as they were at bind
        groups = self.getIntegrationForceGroups()
        # with moves only, no dynamics reads the velocities: leave them (exact either way)
        self._kernel.move(context, temperature, groups, redrawVelocities=self._moveInterval > 0)

    # ------------------------------------------------------------------ settings and statistics
    def setRandomNumberSeed(self, seed):
        """Seed both the Langevin noise and the Timewarp moves (0 picks a fresh seed for the moves).

        As for OpenMM's integrators, call it before the Context is created for the MD part to use it.
        """
        super().setRandomNumberSeed(seed)
        self._kernel.seed(seed)

    def getMode(self):
        return self._kernel.mode

    def getMoveInterval(self):
        return self._moveInterval

    def setMoveInterval(self, moveInterval):
        if int(moveInterval) < 0:
            raise ValueError("moveInterval must be >= 0")
        self._moveInterval = int(moveInterval)

    def getProposalsPerMove(self):
        return self._kernel.proposalsPerMove

    def getBatchSize(self):
        return self._kernel.batchSize

    def getFlowInfo(self):
        """The :class:`~openmm_timewarp.contract.FlowInfo` of the flow in use."""
        return self._kernel.flowInfo

    def getAtomMapping(self):
        """Which System particle each of the model's atoms is (after binding).

        Returns
        -------
        numpy.ndarray of int
            ``mapping[k]`` is the System index of the model's atom k (the identity for models that
            do not carry their molecular graph).

        Raises
        ------
        RuntimeError
            Before the integrator is bound to a Context.
        """
        if self._kernel.mapping is None:
            raise RuntimeError("the atom mapping is known once the integrator is bound: call bind(context) or step().")
        return self._kernel.mapping.copy()

    def invalidateCache(self):
        """Forget the cached energy, density and buffered proposals.

        The moves reuse U(x) while the Context, its System's numbers of particles, forces and constraints, the
        positions, the global parameters and the force groups are unchanged; call this after changing
        force parameters with ``updateParametersInContext`` or ``Context.reinitialize`` (see
        ``docs/kernel-cache.md``).
        """
        self._kernel.invalidateCache()

    def getMoveStatistics(self):
        """All counters and timers, with the MD time, as a :class:`~openmm_timewarp.kernel.MoveStatistics`.

        Snapshots subtract: ``later - earlier`` is what happened in between (``later`` itself if
        :meth:`resetStatistics` was called in between).
        """
        return dataclasses.replace(self._kernel.statistics(), md_time=self._mdTime)

    def getNumMoves(self):
        """Timewarp moves performed since the last :meth:`resetStatistics`."""
        return self._kernel.statistics().moves

    def getNumProposals(self):
        """MH (or exploration) steps spent."""
        return self._kernel.statistics().proposals

    def getNumAccepted(self):
        return self._kernel.statistics().accepted

    def getNumDiscarded(self):
        """Proposals drawn but never tested (after an earlier acceptance in their batch)."""
        return self._kernel.statistics().discarded

    def getNumChiralityRejections(self):
        return self._kernel.statistics().chirality_rejections

    def getAcceptanceRate(self):
        """Accepted / MH steps spent (0.0 before any move)."""
        return self._kernel.statistics().acceptance_rate

    def getStatistics(self):
        """All counters and timers as a dict (times in seconds, energy change in kJ/mol)."""
        return self.getMoveStatistics().as_dict()

    def resetStatistics(self):
        self._kernel.resetStatistics()
        self._mdTime = 0.0

    # ------------------------------------------------------------------ restart
    def getTimewarpState(self):
        """The integrator's own state: the moves' random generator, buffered proposals, cached energy
        and density, atom mapping, counters and timers (a dict; arrays as bytes).

        Together with OpenMM's checkpoint it makes a restart bit-exact on the Reference platform;
        see :func:`openmm_timewarp.save_checkpoint`.
        """
        state = self._kernel.getState()
        state["statistics"]["md_time"] = self._mdTime
        return state

    def setTimewarpState(self, state):
        """Restore what :meth:`getTimewarpState` returned."""
        self._kernel.setState(state)
        self._mdTime = state["statistics"]["md_time"]

    # ------------------------------------------------------------------ unsupported copies
    def _refuse_copy(self, *args):
        raise TypeError(
            "a TimewarpIntegrator cannot be copied or pickled: its flow and random state would be lost "
            "(XmlSerializer writes only the LangevinMiddleIntegrator part). Create a new TimewarpIntegrator "
            "with the same arguments instead; to save and restore a run, use openmm_timewarp.save_checkpoint "
            "and load_checkpoint.")

    __copy__ = __deepcopy__ = __getstate__ = __reduce__ = __reduce_ex__ = _refuse_copy
