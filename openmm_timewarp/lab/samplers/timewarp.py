"""Timewarp moves through :class:`~openmm_timewarp.integrator.TimewarpIntegrator`, as a sampler.

One ``advance`` is one integrator step: one move (``moveInterval`` = 0: pure MH moves, or an
exploration step) or ``moveInterval`` MD steps followed by a move. Settings left as None take the
model's recommended ones.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
from openmm import unit

from ...integrator import TimewarpIntegrator
from .base import Sampler, context_at, positions_of


@dataclass
class TimewarpSettings:
    """Attributes: ``flow`` (model name or file), ``mode`` ("mh" or "explore"), ``move_interval``,
    ``proposals_per_move``, ``batch_size`` (None: the model's recommended setting),
    ``energy_threshold_kJ_mol``, ``timestep_fs``, ``hydrogen_mass_amu``, ``friction_per_ps``, ``constraints``
    ("none", "hbonds": bonds to hydrogen constrained, held by the flow)."""

    flow: str = "alanine-dipeptide"
    mode: str = "mh"
    move_interval: Optional[int] = None
    proposals_per_move: Optional[int] = None
    batch_size: Optional[int] = None
    energy_threshold_kJ_mol: float = 300.0
    timestep_fs: float = 2.0
    hydrogen_mass_amu: Optional[float] = 3.0
    friction_per_ps: float = 1.0
    constraints: Optional[str] = None  # the molecule's own (none for a peptide, a System file's), or "hbonds"


class TimewarpSampler(Sampler):
    """Timewarp MH moves (with MD between them if ``move_interval`` > 0), or exploration."""

    def __init__(self, molecule, seed=1, settings: Optional[TimewarpSettings] = None):
        super().__init__(molecule, seed)
        self.settings = settings or TimewarpSettings()
        self.boltzmann = self.settings.mode == "mh"

    def setup(self, positions: np.ndarray) -> None:
        s = self.settings
        self.integrator = TimewarpIntegrator(
            self.molecule.temperature_K * unit.kelvin, s.friction_per_ps / unit.picosecond,
            s.timestep_fs * unit.femtosecond, flow=s.flow, moveInterval=s.move_interval,
            proposalsPerMove=s.proposals_per_move, batchSize=s.batch_size, mode=s.mode,
            energyThreshold=s.energy_threshold_kJ_mol, topology=self.molecule.topology)
        self.integrator.setRandomNumberSeed(self.seed)
        self.context = context_at(self.molecule.system(s.hydrogen_mass_amu, s.constraints), self.integrator, positions,
                                  self.molecule.temperature_K, self.seed)
        self.integrator.bind(self.context)
        interval = self.integrator.getMoveInterval()
        self.unit = (f"{self.integrator.getProposalsPerMove()} MH step(s)" if interval == 0 else
                     f"{interval} MD steps and {self.integrator.getProposalsPerMove()} MH step(s)")
        if s.mode == "explore":
            self.unit = f"{self.integrator.getProposalsPerMove()} exploration step(s)"

    def advance(self) -> None:
        self.integrator.step(1 if self.integrator.getMoveInterval() == 0 else self.integrator.getMoveInterval())

    def positions(self) -> np.ndarray:
        return positions_of(self.context)

    def statistics(self):
        stats = dict(self.integrator.getStatistics())
        steps = self.context.getStepCount() if self.integrator.getMoveInterval() else 0
        stats.update(md_steps=int(steps), simulated_ns=steps * self.settings.timestep_fs * 1e-6,
                     move_interval=self.integrator.getMoveInterval(),
                     proposals_per_move=self.integrator.getProposalsPerMove(),
                     batch_size=self.integrator.getBatchSize())
        return stats
