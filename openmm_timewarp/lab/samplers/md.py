"""Plain Langevin MD (1 fs; 2 fs with hydrogen mass repartitioning; 4 fs with bonds to hydrogen constrained)."""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .base import Sampler, context_at, langevin, positions_of, steps_in


@dataclass
class MDSettings:
    """Attributes: ``timestep_fs``, ``hydrogen_mass_amu`` (None: standard masses), ``friction_per_ps``,
    ``constraints``, ``record_interval_ps`` (simulated time per ``advance``)."""

    timestep_fs: float = 2.0
    hydrogen_mass_amu: Optional[float] = 3.0
    friction_per_ps: float = 1.0
    constraints: Optional[str] = None  # the molecule's own (none for a peptide, a System file's), or "hbonds"
    record_interval_ps: float = 0.5


class MolecularDynamics(Sampler):
    """LangevinMiddleIntegrator on the Reference platform; one ``advance`` is ``record_interval_ps`` of MD."""

    def __init__(self, molecule, seed=1, settings: Optional[MDSettings] = None):
        super().__init__(molecule, seed)
        self.settings = settings or MDSettings()
        self.unit = f"{self.settings.record_interval_ps:g} ps of MD"

    def setup(self, positions: np.ndarray) -> None:
        s = self.settings
        self._steps = steps_in(s.record_interval_ps, s.timestep_fs)
        self.integrator = langevin(self.molecule.temperature_K, s.friction_per_ps, s.timestep_fs, self.seed)
        self.context = context_at(self.molecule.system(s.hydrogen_mass_amu, s.constraints), self.integrator, positions,
                                  self.molecule.temperature_K, self.seed)
        self._done = 0

    def advance(self) -> None:
        self.integrator.step(self._steps)
        self._done += self._steps

    def positions(self) -> np.ndarray:
        return positions_of(self.context)

    def statistics(self):
        return {"md_steps": self._done, "simulated_ns": self._done * self.settings.timestep_fs * 1e-6}
