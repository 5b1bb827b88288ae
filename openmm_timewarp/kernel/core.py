"""TimewarpKernel: one Timewarp move on an OpenMM Context, shared by the integrator and the openmmtools move."""

from .. import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
import hashlib
import math
import time
from typing import Optional

import numpy as np
import openmm
import torch
from openmm import unit

from .. import units
from ..chirality import chirality_signs
from ..contract import load_flow
from . import state as _state
from . import walks
from .cache import EnergyCache, Left
from .constraints import ensure_held
from .prepare import bind
from .statistics import MoveCounters, MoveStatistics

MODES = ("mh", "explore")
DEFAULT_PROPOSALS_PER_MOVE = 16
DEFAULT_BATCH_SIZE = 16


def _positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class TimewarpKernel:
    """Timewarp moves on an OpenMM Context.

    The kernel owns the flow, the moves' random generator and the statistics. It reads the current
    state from a Context, walks ``proposalsPerMove`` MH (or exploration) steps
    (:mod:`~openmm_timewarp.kernel.walks`), evaluates energies with the same Context, and leaves the
    chosen positions in it. It never integrates: whoever holds the kernel decides when moves happen.

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
        self.proposalsPerMove = _positive_int(
            "proposalsPerMove", recommended.get("proposalsPerMove", DEFAULT_PROPOSALS_PER_MOVE)
            if proposalsPerMove is None else proposalsPerMove)
        self.batchSize = _positive_int(
            "batchSize", recommended.get("batchSize", DEFAULT_BATCH_SIZE) if batchSize is None else batchSize)
        self.mode = mode
        self.energyThreshold = float(energyThreshold)
        self.chiralityCheck = bool(chiralityCheck)
        self.flowThreads = flowThreads
        self.independent = self.flowInfo.proposal_independent
        self.generator = torch.Generator()
        self.generator.seed()
        self.copies = 0  # independent streams handed to copies (see spawnGenerator)
        self.binding = None
        self.reverseChunk = 1
        self.cache = EnergyCache()
        self.counters = MoveCounters(self.flowInfo.component_names)
        self._pinnedMapping: Optional[np.ndarray] = None

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
        ValueError, FlowContractError
            See :func:`openmm_timewarp.kernel.prepare.bind`.
        """
        if self.binding is not None and self.binding.context() is context:
            return
        binding = bind(self.flow, self.flowInfo, self.device, context, topology, temperature,
                       pinned=self._pinnedMapping, chirality_check=self.chiralityCheck,
                       flow_threads=self.flowThreads, stacklevel=stacklevel + 1)
        self.cache.follow(context)  # what was cached for another Context (or System) is gone
        buffer = self.cache.buffer
        if buffer is not None and buffer.system_positions is None:  # restored by setState
            buffer.system_positions = buffer.x.numpy().astype(np.float64)[:, binding.inverse]
        self.binding = binding
        if binding.info is not None:
            self.flowInfo = binding.info  # a flow with a bind step now knows this molecule

    def pinMapping(self, mapping):
        """Prefer ``mapping`` (a restored state's) when matching atoms again at the next :meth:`prepare`."""
        self._pinnedMapping = mapping
        self.binding = None

    @property
    def mapping(self):
        """``mapping[k]``: the System index of the model's atom k (None before :meth:`prepare`)."""
        return None if self.binding is None else self.binding.mapping

    @property
    def _left(self):
        return self.cache.left

    @property
    def _buffer(self):
        return self.cache.buffer

    def invalidateCache(self):
        """Forget the cached energy, density and buffered proposals (after ``updateParametersInContext``
        or ``Context.reinitialize``)."""
        self.cache.clear()

    # ------------------------------------------------------------------ energies and positions
    def _setPositions(self, context, positions):
        context.setPositions(positions)
        if self.binding.has_virtual_sites:
            context.computeVirtualSites()

    def _energy(self, context, positions, groups):
        start = time.perf_counter()
        self._setPositions(context, positions)
        # States hold energies in kJ/mol and positions in nm: read the numbers without unit conversions
        energy = context.getState(getEnergy=True, groups=groups).getPotentialEnergy()._value
        self.counters.energy_time += time.perf_counter() - start
        return energy

    def _current(self, context, groups):
        """The chain's start: positions from the Context, U(x) and log q(x) from the cache when still valid."""
        self.cache.follow(context)
        ensure_held(self.flow, self.binding.holds)  # another kernel sharing the module may hold other bonds
        positions = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        parameters = dict(context.getParameters())
        left = self.cache.lookup(positions, parameters, groups)
        x = torch.from_numpy(positions[self.binding.mapping].astype(np.float32))
        if left is not None:
            energy, log_q = left.energy, left.log_q
            signs = left.signs if left.signs is not None else chirality_signs(x, self.binding.centres)
        else:
            start = time.perf_counter()
            energy = context.getState(getEnergy=True, groups=groups).getPotentialEnergy()._value
            self.counters.energy_time += time.perf_counter() - start
            log_q, signs = None, chirality_signs(x, self.binding.centres)
        chain = walks.Chain(x=x, energy=energy, signs=signs, log_q=log_q, positions=positions,
                            changed_outside=left is None)
        buffer = self.cache.buffer
        if left is None and buffer is not None and buffer.next < len(buffer):
            # buffered proposals sit in the old rigid frame: move them into this state's, or drop them
            if self.binding.frame_atoms:
                walks.replace_buffer(self, chain)
            else:
                self.cache.buffer = None
        if not math.isfinite(energy):
            raise openmm.OpenMMException(
                f"the potential energy of the current state is {energy}: the simulation has blown up "
                "before a Timewarp move (check the time step and the starting structure).")
        return chain, parameters

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
        walk = walks.independent_walk if self.independent else walks.dependent_walk
        steps, accepted, discarded = walk(self, context, chain, kT, groups)
        counters = self.counters
        counters.moves += 1
        counters.proposals += steps
        counters.accepted += accepted
        counters.discarded += discarded
        if chain.moved:
            self._setPositions(context, chain.positions)
            if redrawVelocities:
                seed = int(torch.randint(1, 2**31 - 1, (1,), generator=self.generator))
                context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
        else:
            self._setPositions(context, start_positions)
        self.cache.left = Left(chain.positions, chain.energy, groups, parameters,
                               chain.log_q if self.independent else None, chain.signs)
        return chain.moved

    # ------------------------------------------------------------------ random state and statistics
    def seed(self, seed):
        """Seed the moves' generator (0: a fresh, unpredictable seed)."""
        if int(seed) == 0:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed) & 0xFFFFFFFFFFFF)

    def spawnGenerator(self):
        """A seed for a copy's own random stream, derived from this generator's state and a copy counter.

        The generator itself is not advanced, so the original's stream (and its restarts) stay as
        they were; each call gives another seed.
        """
        self.copies += 1
        digest = hashlib.blake2b(self.generator.get_state().numpy().tobytes()
                                 + self.copies.to_bytes(8, "little"), digest_size=8).digest()
        return int.from_bytes(digest, "little") & 0xFFFFFFFFFFFF or 1

    @property
    def acceptanceRate(self):
        return self.counters.accepted / self.counters.proposals if self.counters.proposals else 0.0

    def statistics(self) -> MoveStatistics:
        """The counters and timers as a :class:`MoveStatistics` snapshot."""
        return self.counters.snapshot()

    def resetStatistics(self):
        self.counters.reset()

    def setStatistics(self, stats):
        """Set the counters and timers from a :class:`MoveStatistics` or its dict (missing timers count as 0)."""
        if not isinstance(stats, MoveStatistics):
            stats = MoveStatistics.from_dict(stats, self.flowInfo.component_names)
        self.counters.load(stats)
        self.counters.generation += 1  # a discontinuity: differences with earlier snapshots are meaningless

    def getState(self):
        """Everything a bit-exact restart needs: the random generator, the buffered proposals, the
        cached energy and density, the atom mapping and the statistics (a dict; arrays as bytes)."""
        return _state.get_state(self)

    def setState(self, state):
        """Restore what :meth:`getState` returned (extra statistics keys are ignored)."""
        _state.set_state(self, state)
