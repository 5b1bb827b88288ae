"""Well-tempered metadynamics (``openmm.app.Metadynamics``) on the central residue's phi and psi.

Two collective variables, periodic on [-pi, pi): the phi and psi of the peptide's central residue
(:attr:`openmm_timewarp.lab.analysis.peptide.PeptideObservables.central`), or for another molecule
its first two soft torsions (``biased_torsions`` of its observables). Each sample carries the
reweighting factor exp((V(s, t) - c(t)) / kT), with V the bias at the time of the sample and c(t)
the Tiwary-Parrinello offset of the well-tempered bias, so that weighted averages over the
samples estimate Boltzmann averages. V and c are the ones the sample was drawn under: at a step
where a Gaussian is deposited (at the sample itself), those from just before the deposit.
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import openmm
from openmm import app, unit
from scipy.special import logsumexp

from ..analysis.observables import observables_of
from .base import Sampler, fastest_platform, langevin, positions_of, steps_in


def bias_offset(free_energy: np.ndarray, kT: float, bias_factor: float) -> float:
    """The Tiwary-Parrinello offset c(t) of a well-tempered bias, from its free-energy estimate F on the grid.

    c = kT ln( sum exp(-F/kT) / sum exp(-F/(gamma kT)) ) (same energy unit as ``kT``).
    """
    f = np.asarray(free_energy, dtype=float).reshape(-1) / float(kT)
    return float(kT) * float(logsumexp(-f) - logsumexp(-f / float(bias_factor)))


def torsion_variable(atoms) -> openmm.CustomTorsionForce:
    """A force whose energy is one torsion angle (radians): a collective variable."""
    force = openmm.CustomTorsionForce("theta")
    force.addTorsion(*[int(i) for i in atoms], [])
    return force


class _Metadynamics(app.Metadynamics):
    """``app.Metadynamics`` that remembers, at each deposit, the step, the bias energy and the free energy
    from just before it (``before_deposit``)."""

    before_deposit = None

    def _addGaussian(self, position, height, context):
        bias = context.getState(getEnergy=True, groups={self._force.getForceGroup()}).getPotentialEnergy()
        self.before_deposit = (context.getStepCount(), bias, self.getFreeEnergy())
        super()._addGaussian(position, height, context)


@dataclass
class MetadynamicsSettings:
    """Attributes: ``bias_factor``, ``height_kJ_mol``, ``width_deg``, ``frequency_steps`` (a Gaussian every
    so many steps), ``record_interval_ps``, ``timestep_fs``, ``hydrogen_mass_amu``, ``friction_per_ps``, ``constraints``."""

    bias_factor: float = 6.0
    height_kJ_mol: float = 1.2
    width_deg: float = 20.0
    frequency_steps: int = 250
    record_interval_ps: float = 0.5
    timestep_fs: float = 2.0
    hydrogen_mass_amu: Optional[float] = 3.0
    friction_per_ps: float = 1.0
    constraints: Optional[str] = None  # the molecule's own (none for a peptide, a System file's), or "hbonds"


class Metadynamics(Sampler):
    """Well-tempered metadynamics; one ``advance`` is ``record_interval_ps`` of biased MD."""

    def __init__(self, molecule, seed=1, settings: Optional[MetadynamicsSettings] = None):
        super().__init__(molecule, seed)
        self.settings = settings or MetadynamicsSettings()
        self.variables = observables_of(molecule.topology).biased_torsions()
        if not self.variables:
            raise ValueError(f"{molecule.name} has no soft torsion for metadynamics to bias.")
        self.unit = f"{self.settings.record_interval_ps:g} ps of biased MD"

    def setup(self, positions: np.ndarray) -> None:
        s = self.settings
        temperature = self.molecule.temperature_K * unit.kelvin
        self._steps = steps_in(s.record_interval_ps, s.timestep_fs)
        system = self.molecule.system(s.hydrogen_mass_amu, s.constraints)
        width = math.radians(s.width_deg)
        variables = [app.BiasVariable(torsion_variable(atoms), -math.pi, math.pi, width, periodic=True)
                     for atoms in self.variables]
        self.metadynamics = _Metadynamics(system, variables, temperature, s.bias_factor,
                                             s.height_kJ_mol * unit.kilojoule_per_mole, int(s.frequency_steps))
        self._bias_groups = {system.getForce(system.getNumForces() - 1).getForceGroup()}
        integrator = langevin(self.molecule.temperature_K, s.friction_per_ps, s.timestep_fs, self.seed)
        self.simulation = app.Simulation(self.molecule.topology, system, integrator,
                                         fastest_platform(system, positions))
        self.simulation.context.setPositions(positions)
        self.simulation.context.setVelocitiesToTemperature(temperature, self.seed)

    def advance(self) -> None:
        self.metadynamics.step(self.simulation, self._steps)

    def positions(self) -> np.ndarray:
        return positions_of(self.simulation.context)

    def log_weight(self) -> float:
        kT = self.molecule.kT
        before = self.metadynamics.before_deposit
        if before is not None and before[0] == self.simulation.context.getStepCount():
            bias, free = before[1]._value, before[2].value_in_unit(unit.kilojoule_per_mole)  # drawn under these
        else:
            bias = self.simulation.context.getState(getEnergy=True, groups=self._bias_groups).getPotentialEnergy()._value
            free = self.metadynamics.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
        distinct = np.asarray(free)[tuple(slice(0, -1) for _ in range(np.ndim(free)))]  # periodic: last = first
        return (bias - bias_offset(distinct, kT, self.settings.bias_factor)) / kT

    def statistics(self):
        steps = int(self.simulation.currentStep)
        return {"md_steps": steps, "simulated_ns": steps * self.settings.timestep_fs * 1e-6,
                "gaussians": steps // int(self.settings.frequency_steps),
                "collective_variables": "phi and psi of the central residue"}
