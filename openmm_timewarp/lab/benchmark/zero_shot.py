"""Zero-shot evaluation of a transferable model over many peptides: one peptide per core, pure MH moves.

For every peptide: build and minimise it (``amber14-obc1``, 310 K), on the platform measured
fastest for it (one CPU thread for this preset's CustomGBForce), bind the model with no
per-molecule training, and run pure Metropolis-Hastings moves (``moveInterval=0``) for a fixed
wall-clock time on one core. Recorded: MH steps, acceptance (accepted / MH steps), MH steps per
second (flow and energy together), and the first-visit time of every macrostate of every residue
(:mod:`openmm_timewarp.lab.analysis.peptide`), read after every MH step. A peptide the model
refuses, or that fails, is recorded with its error rather than stopping the run.

Each peptide's result is written to ``OUTPUT/<name>.json`` as soon as it is done, so a rerun
continues with the peptides that have none.
"""

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .._resumable import read_json, write_json_atomic
from ..datasets.peptide_set import PeptideSpec

PRESET = "amber14-obc1"
TEMPERATURE_K = 310.0


@dataclass
class ZeroShotResult:
    """One peptide's zero-shot run (see the module docstring); times in seconds from the first move."""

    name: str
    group: str
    split: str
    sequence: str
    capped: bool
    atoms: int = 0
    seconds: float = 0.0
    mh_steps: int = 0
    accepted: int = 0
    states: List[str] = field(default_factory=list)
    first_visit_s: Dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def acceptance(self) -> float:
        return self.accepted / self.mh_steps if self.mh_steps else 0.0

    @property
    def steps_per_s(self) -> float:
        return self.mh_steps / self.seconds if self.seconds else 0.0

    def visited(self, state: str) -> bool:
        return state in self.first_visit_s


def evaluate_peptide(flow: str, spec: PeptideSpec, seconds: float, seed: int = 1, batch_size: int = 256
                     ) -> ZeroShotResult:
    """Zero-shot pure-MH run of one peptide for ``seconds`` of wall-clock time (one thread)."""
    import openmm
    from openmm import unit

    from ... import TimewarpIntegrator
    from ..analysis.peptide import PeptideObservables
    from ..molecule import load_molecule
    from ..samplers.base import fastest_platform

    result = ZeroShotResult(spec.name, spec.group, spec.split, spec.sequence, spec.capped)
    try:
        molecule = load_molecule(spec.sequence, capped=spec.capped, preset=PRESET, temperature_K=TEMPERATURE_K)
        observables = PeptideObservables(molecule.topology)
        integrator = TimewarpIntegrator(TEMPERATURE_K * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond,
                                        flow=flow, moveInterval=0, proposalsPerMove=1, batchSize=batch_size,
                                        topology=molecule.topology)
        integrator.setRandomNumberSeed(seed)
        system = molecule.system()
        context = openmm.Context(system, integrator, fastest_platform(system, molecule.positions))
        context.setPositions(molecule.positions)
        integrator.step(1)  # binds the model (not timed)
    except Exception as error:  # noqa: BLE001  (a peptide that fails is recorded with its error; the rest go on)
        result.error = f"{type(error).__name__}: {error}"
        return result
    result.atoms = len(molecule.positions)
    result.states = observables.state_names()
    start_proposals, start_accepted = integrator.getNumProposals(), integrator.getNumAccepted()
    started = time.perf_counter()
    quads = observables.quads()
    try:
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
            integrator.step(1)
            positions = context.getState(getPositions=True).getPositions(asNumpy=True)._value
            indicators = observables.indicators(observables.values(positions[None]), extra=False) if len(quads) else {}
            for state, inside in indicators.items():
                if state not in result.first_visit_s and bool(inside[0]):
                    result.first_visit_s[state] = round(elapsed, 3)
    except Exception as error:  # noqa: BLE001  (recorded, with the steps made until then)
        result.error = f"{type(error).__name__}: {error}"
    result.seconds = time.perf_counter() - started
    result.mh_steps = integrator.getNumProposals() - start_proposals
    result.accepted = integrator.getNumAccepted() - start_accepted
    return result


def _result_path(output: str, spec: PeptideSpec) -> str:
    return os.path.join(output, f"{spec.name}.json")


def _run_one(flow, spec, seconds, seed, output):
    result = evaluate_peptide(flow, spec, seconds, seed)
    write_json_atomic(_result_path(output, spec), asdict(result))
    return result


def read_result(path: str) -> ZeroShotResult:
    return ZeroShotResult(**read_json(path))


def evaluate_set(flow: str, specs: Sequence[PeptideSpec], seconds: float, output: str, workers: int = 2,
                 seed: int = 1, progress: bool = True) -> List[ZeroShotResult]:
    """Every peptide of ``specs`` (those without a result in ``output``), ``workers`` at a time."""
    from tqdm.auto import tqdm

    from ..workers import worker_pool

    os.makedirs(output, exist_ok=True)
    flow = os.path.abspath(flow) if os.path.isfile(flow) else flow
    todo = [s for s in specs if not os.path.isfile(_result_path(output, s))]
    with worker_pool(workers) as pool:
        futures = [pool.submit(_run_one, flow, spec, seconds, seed + k, output) for k, spec in enumerate(todo)]
        for future in tqdm(futures, desc="peptides", disable=not progress):
            future.result()
    return [read_result(_result_path(output, s)) for s in specs]


def rare_state(result: ZeroShotResult) -> Optional[str]:
    """``<second residue>:phi_positive`` of a zwitterionic dipeptide whose second residue is neither Gly nor Pro."""
    if result.group != "2aa" or result.sequence[1] in "GP":
        return None
    return next((s for s in result.states if s.endswith(":phi_positive") and s.split(":")[0].endswith("2")), None)


def summary(results: Sequence[ZeroShotResult]) -> Dict[str, object]:
    """Median and minimum acceptance, failures, MH steps/s and (2AA) the share that reached phi > 0."""
    ran = [r for r in results if r.error is None]
    acceptance = np.asarray([r.acceptance for r in ran]) if ran else np.zeros(0)
    rare = [(r, rare_state(r)) for r in ran if rare_state(r)]
    return {
        "peptides": len(results), "failed": [f"{r.name}: {r.error}" for r in results if r.error],
        "median_acceptance": float(np.median(acceptance)) if len(acceptance) else None,
        "min_acceptance": float(acceptance.min()) if len(acceptance) else None,
        "below_1_percent": [r.name for r in ran if r.acceptance < 0.01],
        "median_steps_per_s": float(np.median([r.steps_per_s for r in ran])) if ran else None,
        "rare_visited": f"{sum(r.visited(s) for r, s in rare)} of {len(rare)}" if rare else None,
    }


def table(results: Sequence[ZeroShotResult]) -> str:
    """A markdown table: one row per peptide."""
    lines = ["| peptide | atoms | MH steps | acceptance | MH steps/s | states visited | rare state first visit (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.name} | | | | | error: {r.error[:80]} | |")
            continue
        rare = rare_state(r)
        first = (f"{r.first_visit_s[rare]:.1f}" if rare and r.visited(rare) else ("never" if rare else "-"))
        lines.append(f"| {r.name} | {r.atoms} | {r.mh_steps} | {r.acceptance:.3f} | {r.steps_per_s:.0f} | "
                     f"{len(r.first_visit_s)} of {len(r.states)} | {first} |")
    return "\n".join(lines)
