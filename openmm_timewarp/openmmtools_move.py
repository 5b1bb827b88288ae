"""TimewarpMove: Timewarp moves as an openmmtools MCMCMove (openmmtools is an optional dependency).

The move uses the same :class:`~openmm_timewarp.kernel.TimewarpKernel` as TimewarpIntegrator, so
the acceptance rule, the fixed-budget walk and the chirality guard are the package's single
implementation. Combine it with MD the openmmtools way::

    from openmmtools import mcmc
    from openmm_timewarp.openmmtools_move import TimewarpMove

    move = mcmc.SequenceMove([mcmc.LangevinDynamicsMove(n_steps=100), TimewarpMove("alanine-dipeptide")])
    sampler = mcmc.MCMCSampler(thermodynamic_state, sampler_state, move)
    sampler.run(1000)
"""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
import os

from openmm import unit

try:
    from openmmtools import mcmc
except ImportError as error:
    raise ImportError("TimewarpMove needs openmmtools: pip install openmmtools "
                      "(or pip install -c constraints.txt -e \".[openmmtools]\").") from error

from .kernel import MoveStatistics, TimewarpKernel, decode_state, encode_state
from .units import in_unit

_KJ = unit.kilojoule_per_mole
_SETTINGS = ("n_proposals", "batch_size", "mode", "energy_threshold", "chirality_check", "device")


class TimewarpMove(mcmc.MCMCMove):
    """A Timewarp move: ``n_proposals`` MH steps (or exploration steps) with a learned proposal.

    Positions change only through accepted proposals; after an accepted proposal the velocities
    are redrawn at the thermodynamic state's temperature, after a rejected one they are kept.
    The target is the ThermodynamicState's Boltzmann distribution (all force groups). Elements
    and bonds (for the chirality guard) come from the System's masses and bond forces.

    Parameters
    ----------
    flow : str or os.PathLike or torch.nn.Module
        A shipped model name, a TorchScript file, or a module honouring the flow contract. Only
        names and paths can be serialized.
    n_proposals : int, optional
        MH steps per application (default: the model's recommended setting, else 16).
    batch_size : int, optional
        Proposals drawn per flow call (default: the model's recommended setting, else 16).
    mode : {"mh", "explore"}
        "explore" keeps proposals whose energy rises by less than ``energy_threshold``: it finds
        metastable states fast but does NOT sample the Boltzmann distribution.
    energy_threshold : openmm.unit.Quantity or float
        kJ/mol, mode "explore" only.
    chirality_check : bool
        Reject proposals that invert a chirality centre.
    device : str
        Torch device of the flow.
    seed : int, optional
        Seed of the move's random generator (default: fresh entropy).

    Attributes
    ----------
    n_accepted, n_proposed : int
        Accepted proposals and MH steps spent, as in openmmtools' Metropolized moves.
    """

    def __init__(self, flow, n_proposals=None, batch_size=None, mode="mh", energy_threshold=300.0 * _KJ,
                 chirality_check=True, device="cpu", seed=None):
        super().__init__()
        settings = dict(n_proposals=n_proposals, batch_size=batch_size, mode=mode,
                        energy_threshold=in_unit(energy_threshold, _KJ, "energy_threshold"), chirality_check=chirality_check, device=str(device))
        self._build(flow, settings)
        if seed is not None:
            self._kernel.seed(seed)

    def _build(self, flow, settings, loaded=None):
        self._flow_spec = os.fspath(flow) if isinstance(flow, (str, os.PathLike)) else flow
        self._kernel = TimewarpKernel(
            self._flow_spec if loaded is None else loaded, proposalsPerMove=settings["n_proposals"], batchSize=settings["batch_size"],
            mode=settings["mode"], energyThreshold=settings["energy_threshold"],
            chiralityCheck=settings["chirality_check"], device=settings["device"])
        self._settings = {name: settings[name] for name in _SETTINGS}
        self._settings.update(n_proposals=self._kernel.proposalsPerMove, batch_size=self._kernel.batchSize)

    # ------------------------------------------------------------------ the move
    def apply(self, thermodynamic_state, sampler_state, context_cache=None):
        """Apply ``n_proposals`` Timewarp MH steps to ``sampler_state`` (modified in place).

        Parameters
        ----------
        thermodynamic_state : openmmtools.states.ThermodynamicState
            Gives the System and the temperature of the target.
        sampler_state : openmmtools.states.SamplerState
            The state to move.
        context_cache : openmmtools.cache.ContextCache, optional
            Where the Context comes from (default: openmmtools' global cache).
        """
        context_cache = self._get_context_cache(context_cache)
        context, _ = context_cache.get_context(thermodynamic_state)
        sampler_state.apply_to_context(context)
        temperature = thermodynamic_state.temperature.value_in_unit(unit.kelvin)
        self._kernel.prepare(context, temperature=temperature)
        self._kernel.move(context, temperature)
        sampler_state.update_from_context(context)

    # ------------------------------------------------------------------ statistics
    @property
    def n_accepted(self):
        return self._kernel.statistics().accepted

    @property
    def n_proposed(self):
        return self._kernel.statistics().proposals

    @property
    def statistics(self):
        """Counters and timers: n_accepted, n_proposed, n_moves, n_discarded, n_chirality_rejections,
        accepted_energy_change (kJ/mol), flow_time and energy_time (s)."""
        s = self._kernel.statistics()
        return {"n_accepted": s.accepted, "n_proposed": s.proposals, "n_moves": s.moves,
                "n_discarded": s.discarded, "n_chirality_rejections": s.chirality_rejections,
                "accepted_energy_change": s.accepted_energy_change, "flow_time": s.flow_time,
                "energy_time": s.energy_time}

    @statistics.setter
    def statistics(self, value):
        self._kernel.setStatistics(MoveStatistics(
            moves=value.get("n_moves", 0), proposals=value["n_proposed"], accepted=value["n_accepted"],
            discarded=value.get("n_discarded", 0), chirality_rejections=value.get("n_chirality_rejections", 0),
            accepted_energy_change=value.get("accepted_energy_change", 0.0),
            flow_time=value.get("flow_time", 0.0), energy_time=value.get("energy_time", 0.0)))

    def reset_statistics(self):
        self._kernel.resetStatistics()

    # ------------------------------------------------------------------ serialization
    def __getstate__(self, **kwargs):
        """The openmmtools serialization: the flow's name or path, the settings, and the kernel's state
        (random generator, buffered proposals, cached energy and density, atom mapping, statistics).

        Raises
        ------
        TypeError
            The move was built from an in-memory module (export it to a file and pass the path).
        """
        if not isinstance(self._flow_spec, str):
            raise TypeError("this TimewarpMove was built from an in-memory flow module, which cannot be "
                            "serialized. Export the flow to a TorchScript file (openmm_timewarp.flow.export_flow "
                            "or torch.jit.save) and build the move from its path.")
        return dict(flow=self._flow_spec, **self._settings, kernel_state=encode_state(self._kernel.getState()))

    def __setstate__(self, serialization):
        self._build(serialization["flow"], serialization)
        self._kernel.setState(decode_state(serialization["kernel_state"]))

    def __deepcopy__(self, memo):
        """An independent move: the same flow (shared, it is stateless), settings and statistics, its own random stream.

        openmmtools' MultiStateSampler deep-copies one move per thermodynamic state; each copy
        draws from a stream seeded from this move's generator state and a copy counter (this
        move's own stream is not advanced), so copies neither repeat this move's noise nor each
        other's, and copies of identically seeded moves are identical. The copy starts with an empty
        energy cache and proposal buffer. Serialization (openmmtools, pickle) restores the stream
        exactly instead.
        """
        copy = TimewarpMove.__new__(type(self))
        copy._build(self._flow_spec, self._settings, loaded=self._kernel.flow)
        copy._kernel.setState(self._kernel.getState())
        copy._kernel.seed(self._kernel.spawnGenerator())
        copy._kernel.invalidateCache()
        return copy
