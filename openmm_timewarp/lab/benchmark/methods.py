"""The methods a benchmark compares, by name: each builds a :class:`~openmm_timewarp.lab.samplers.Sampler`.

Every method runs at its fastest valid settings: unconstrained MD at 1 fs, and everything else at
2 fs with hydrogen mass repartitioning (3 amu; masses do not change the configurational
Boltzmann distribution); the ``-4fs-hbonds`` methods run where most users run MD, with bonds to
hydrogen constrained, 4 amu hydrogens and a 4 fs step (a System of its own: constrained dynamics
samples a slightly different ensemble, see docs/constraints.md). Register more with
:func:`register_method`.
"""

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List

from ...contract import FlowContractError, load_flow
from ..samplers import (MDSettings, Metadynamics, MetadynamicsSettings, MolecularDynamics, ReplicaExchange,
                        ReplicaExchangeSettings, TimewarpSampler, TimewarpSettings)
from ..samplers.replica_exchange import replica_count

DEFAULT_METHODS = ("md-1fs", "md-2fs-hmr", "replica-exchange", "metadynamics", "timewarp-mh", "timewarp-mixed",
                   "timewarp-explore", "md-4fs-hbonds", "replica-exchange-4fs-hbonds", "metadynamics-4fs-hbonds",
                   "timewarp-mh-hbonds")
# the settings of the constrained methods: where users run MD (4 fs, HMR 4 amu, HBonds; stable for
# alanine dipeptide over 200 ps, 5 fs blew up within 1 ps, docs/constraints.md)
HBONDS_4FS = {"timestep_fs": 4.0, "hydrogen_mass_amu": 4.0, "constraints": "hbonds"}
MIXED_MOVE_INTERVAL = 100
# MH steps per move of "timewarp-mixed" for a model that recommends none for mixing
# (``recommended_settings["proposalsPerMoveMixed"]``). After MD a move pays one flow call for the
# current state's density (a state-independent flow's buffer survives MD); on alanine dipeptide
# (60 s runs, one core, shared machine) 1, 4, 8, 16 and 32 steps gave 119, 233, 256-302, 176 and
# 111 block ESS/s of phi > 0: a few steps share that call and the 100 MD steps; many cost samples
# (one is recorded per move).
MIXED_PROPOSALS_PER_MOVE = 8


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes
    ----------
    name, description : str
    build : callable
        ``build(molecule, seed, options) -> Sampler``; ``options`` holds ``flow`` and any move settings.
    role : str
        "baseline" (plain MD: speed-ups are taken against the best of them), "peer" (methods a chemist
        would pick instead) or "timewarp".
    """

    name: str
    description: str
    build: Callable[..., Any]
    role: str


_METHODS: Dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make a method available by name (replacing one of the same name)."""
    _METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The method of that name.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(_METHODS)}.")
    return _METHODS[name]


def method_names() -> List[str]:
    return list(_METHODS)


def default_methods(flow) -> List[str]:
    """:data:`DEFAULT_METHODS`, without ``timewarp-mh-hbonds`` for a flow that cannot hold bonds (a Cartesian model)."""
    try:
        holds = load_flow(flow)[1].can_hold_bonds
    except FlowContractError:  # the samplers report an unreadable flow when they set up
        holds = True
    return [m for m in DEFAULT_METHODS if holds or m != "timewarp-mh-hbonds"]


def _timewarp(options, **settings) -> TimewarpSettings:
    keys = ("move_interval", "proposals_per_move", "batch_size")
    given = {k: options[k] for k in keys if options.get(k) is not None}
    return TimewarpSettings(flow=options["flow"], **{**given, **settings})


def _mixed(options) -> TimewarpSettings:
    """Settings of "timewarp-mixed": MD between moves, and MH steps per move meant for mixing."""
    settings = {"move_interval": options.get("mixed_move_interval") or MIXED_MOVE_INTERVAL}
    if options.get("proposals_per_move") is None:
        try:
            recommended = load_flow(options["flow"])[1].recommended_settings
        except FlowContractError:  # not readable yet: the sampler reports it when it sets up
            recommended = {}
        settings["proposals_per_move"] = recommended.get("proposalsPerMoveMixed", MIXED_PROPOSALS_PER_MOVE)
    return _timewarp(options, **settings)


def _replicas(molecule) -> ReplicaExchangeSettings:
    return ReplicaExchangeSettings(num_replicas=replica_count(len(molecule.positions), molecule.temperature_K))


for _method in (
    Method("md-1fs", "Langevin MD, 1 fs, standard masses",
           lambda m, seed, o: MolecularDynamics(m, seed, MDSettings(timestep_fs=1.0, hydrogen_mass_amu=None)),
           "baseline"),
    Method("md-2fs-hmr", "Langevin MD, 2 fs, hydrogen mass repartitioning",
           lambda m, seed, o: MolecularDynamics(m, seed, MDSettings()), "baseline"),
    Method("replica-exchange", "temperature replica exchange to 600 K, swaps every 0.5 ps, 2 fs HMR",
           lambda m, seed, o: ReplicaExchange(m, seed, _replicas(m)), "peer"),
    Method("metadynamics", "well-tempered metadynamics on the central residue's phi and psi, 2 fs HMR",
           lambda m, seed, o: Metadynamics(m, seed), "peer"),
    Method("timewarp-mh", "Timewarp MH moves only, the model's recommended settings",
           lambda m, seed, o: TimewarpSampler(m, seed, _timewarp(o, move_interval=o.get("move_interval") or 0)),
           "timewarp"),
    Method("timewarp-mixed", f"2 fs HMR MD with Timewarp MH moves every {MIXED_MOVE_INTERVAL} steps (the model's "
           f"proposalsPerMoveMixed MH steps, else {MIXED_PROPOSALS_PER_MOVE})",
           lambda m, seed, o: TimewarpSampler(m, seed, _mixed(o)), "timewarp"),
    Method("md-4fs-hbonds", "Langevin MD, 4 fs, bonds to hydrogen constrained, hydrogen mass 4 amu",
           lambda m, seed, o: MolecularDynamics(m, seed, MDSettings(**HBONDS_4FS)), "baseline"),
    Method("replica-exchange-4fs-hbonds", "temperature replica exchange to 600 K, swaps every 0.5 ps, 4 fs HBonds",
           lambda m, seed, o: ReplicaExchange(m, seed, replace(_replicas(m), **HBONDS_4FS)), "peer"),
    Method("metadynamics-4fs-hbonds", "well-tempered metadynamics as above, a Gaussian every 0.5 ps, 4 fs HBonds",
           lambda m, seed, o: Metadynamics(m, seed, MetadynamicsSettings(frequency_steps=125, **HBONDS_4FS)), "peer"),
    Method("timewarp-mh-hbonds", "Timewarp MH moves only on the HBonds System (4 amu hydrogens; bonds held)",
           lambda m, seed, o: TimewarpSampler(m, seed, _timewarp(o, move_interval=o.get("move_interval") or 0,
                                                                 **HBONDS_4FS)), "timewarp"),
    Method("timewarp-explore", "Timewarp exploration (not Boltzmann): keeps proposals below +300 kJ/mol",
           lambda m, seed, o: TimewarpSampler(m, seed, _timewarp(o, mode="explore", move_interval=0)), "timewarp"),
):
    register_method(_method)
