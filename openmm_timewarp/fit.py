"""``openmm-timewarp fit``: a user's own peptide to a trained, checked Timewarp model in one command.

Stages, each resumable (``DIR/fit.json`` records what is done; the same command continues):

1. **molecule**: the System from a PDB file or a sequence (:func:`openmm_timewarp.molecule.load_molecule`),
   minimised, written to ``DIR/structure.pdb``.
2. **explore**: replica exchange (310 K up to 600 K, hydrogen mass repartitioning, 2 fs), one
   independent run per worker, recording every replica's configuration. Nothing is assumed about
   the molecule's metastable states: the hot replicas cross the barriers.
3. **seeds**: starting structures spread over what the exploration found: half by farthest-point
   sampling in the (cos, sin) of every backbone and chi1 torsion, over all temperatures, half drawn
   from the target-temperature replica.
4. **md**: a short MD run at the target temperature from every seed (``DIR/md/seed-NNN``, the
   package's resumable run format): local fluctuations at the right temperature, metastable
   states all represented, rare ones more than their weight. Metropolis-Hastings corrects any bias
   of the training data; what matters is that the data cover every state.
5. **train**: a state-independent internal-coordinate flow (``--family internal`` without a
   lag) by maximum likelihood, for the time left in the budget (``DIR/train``).
6. **export**: ``DIR/model.pt``, with its recommended move settings.
7. **check**: a short pure-MH run with the exported model: acceptance and the macrostates visited.

``TimewarpIntegrator(..., flow="DIR/model.pt")`` then works as with a shipped model. ``fit``
never reads a reference; ``openmm-timewarp reference`` makes one independently.
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
from openmm import unit

from .workers import worker_pool

FIT_FILE = "fit.json"
STAGES = ("molecule", "explore", "seeds", "md", "train", "export", "check")
SEED_TIMESTEP_PS = 0.002  # MD from the seeds: 2 fs with hydrogen mass repartitioning


@dataclass
class FitSettings:
    """Settings of :func:`fit` (times in minutes, seconds or picoseconds as named).

    Attributes
    ----------
    minutes : float
        Wall-clock budget of the whole fit; training gets what the other stages leave.
    workers : int
        Processes (one core each) for exploration and MD; training uses as many threads.
    explore_share, md_share : float
        Fractions of the budget spent exploring and (at most) on MD from the seeds. The MD share is
        large because data, not training time, limits the flow: a capped tetrapeptide with 9 ns of
        MD (share 0.35) overfitted after 1.7 minutes of training and left half the budget unused.
    replicas : int, optional
        Replica-exchange temperatures (default: 8 for 22 atoms, growing with the square root of size).
    temperature_max_K : float
    seeds : int
        MD runs at the target temperature.
    seed_equilibration_ps, seed_production_ps, save_interval_ps : float
        MD per seed; the production is shortened where the MD share of the budget would not hold it.
    check_seconds : float
        The final MH check.
    explore_s : float, optional
        Seconds of exploration per worker (default: ``explore_share`` of the budget).
    adaptive_production : bool
        Shorten the MD per seed to fit the MD share of the budget (else always ``seed_production_ps``).
    flow : dict
        Fields of :class:`openmm_timewarp.flow.internal.model.InternalFlowConfig`.
    batch_size, learning_rate, max_epochs, patience
        Training (it stops ``patience`` epochs after the best validation NLL, or when the budget is spent).
    seed : int
    """

    minutes: float = 30.0
    workers: int = 2
    explore_share: float = 0.15
    md_share: float = 0.6
    replicas: int = 0
    temperature_max_K: float = 600.0
    seeds: int = 128
    seed_equilibration_ps: float = 20.0
    seed_production_ps: float = 400.0
    save_interval_ps: float = 0.5
    check_seconds: float = 60.0
    explore_s: Optional[float] = None
    adaptive_production: bool = True
    flow: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 512
    learning_rate: float = 1e-3
    max_epochs: int = 200
    patience: int = 8
    seed: int = 1


# ------------------------------------------------------------------------------------------------ workers
def _explore(molecule, settings: FitSettings, seconds: float, seed: int, path: str) -> str:
    """One replica-exchange run; saves every replica's configuration (every 2 ps) to ``path``."""
    from .samplers import ReplicaExchange, ReplicaExchangeSettings
    from .samplers.replica_exchange import replica_count

    sampler = ReplicaExchange(molecule, seed, ReplicaExchangeSettings(
        num_replicas=settings.replicas or replica_count(len(molecule.positions), molecule.temperature_K,
                                                        settings.temperature_max_K),
        temperature_max_K=settings.temperature_max_K))
    sampler.setup(molecule.positions)
    frames, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(4):
            sampler.advance()
        frames.append(sampler.all_positions().astype(np.float32))
    stats = sampler.statistics()
    np.savez(path + ".tmp.npz", positions=np.stack(frames), temperatures_K=np.asarray(sampler.temperatures),
             swap_acceptance=np.asarray(stats["swap_acceptance"]),
             md_steps_per_s=stats["md_steps"] / (time.perf_counter() - start))
    os.replace(path + ".tmp.npz", path)
    return path


def _seeded_md(directory: str, pdb: str, name: str, molecule, settings: FitSettings, production_ps: float,
               seed: int) -> str:
    """MD at the molecule's temperature from one seed structure, in the package's resumable run format."""
    from .data.simulate import simulate

    simulate(directory, start_pdb=pdb, name=name, preset=molecule.preset, temperature=molecule.temperature_K,
             timestep=SEED_TIMESTEP_PS * 1000.0, hydrogen_mass=3.0, save_interval=settings.save_interval_ps,
             equilibration=settings.seed_equilibration_ps, production=production_ps / 1000.0,
             seed=seed, platform="Reference", progress=False)
    return name


def _in_workers(function, tasks, workers: int, description: str, progress: bool) -> List[Any]:
    from tqdm.auto import tqdm

    with worker_pool(workers) as pool:
        futures = [pool.submit(function, *task) for task in tasks]
        results = []
        with tqdm(total=len(futures), desc=description, disable=not progress) as bar:
            for future in futures:
                results.append(future.result())
                bar.update(1)
    return results


# ------------------------------------------------------------------------------------------------ seeds
def farthest_points(features: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` rows spread out by greedy farthest-point selection (Euclidean)."""
    chosen = [int(rng.integers(len(features)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    for _ in range(1, min(count, len(features))):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(features - features[chosen[-1]], axis=1))
    return np.asarray(chosen)


def choose_seeds(observables, explored: List[np.ndarray], count: int, seed: int) -> np.ndarray:
    """Seed structures [count, N, 3]: half farthest-point over all replicas, half from the target temperature."""
    rng = np.random.default_rng(seed)
    every = np.concatenate([e.reshape(-1, *e.shape[2:]) for e in explored])
    coldest = np.concatenate([e[:, 0] for e in explored])
    angles = np.radians(observables.values(every))
    spread = farthest_points(np.concatenate([np.cos(angles), np.sin(angles)], axis=1), count - count // 2, rng)
    typical = rng.choice(len(coldest), size=count // 2, replace=len(coldest) < count // 2)
    return np.concatenate([every[spread], coldest[typical]])


# ------------------------------------------------------------------------------------------------ the fit
class Fit:
    """The fit of one molecule in one folder (see the module docstring)."""

    def __init__(self, directory: str, source: str, capped: bool = False, preset: str = None, forcefield=None,
                 temperature_K: float = None, settings: FitSettings = None, progress: bool = True):
        from .systems import DEFAULT_PRESET

        from .analysis.peptide import PeptideObservables
        from .molecule import load_molecule

        self.directory = os.path.abspath(directory)
        self.settings = settings or FitSettings()
        self.progress = progress
        self.request = {"input": source, "capped": bool(capped), "preset": preset or DEFAULT_PRESET,
                        "forcefield": list(forcefield or []), "temperature_K": temperature_K}
        # the molecule first: bad input fails before anything is written
        self.molecule = load_molecule(source, bool(capped), self.request["preset"], forcefield or None, temperature_K)
        self.observables = PeptideObservables(self.molecule.topology)
        os.makedirs(self.directory, exist_ok=True)
        self.record = self._read()
        if self.record.get("request", self.request) != self.request:
            raise ValueError(f"{self.directory!r} holds a fit of {self.record['request']['input']!r} with other "
                             "settings; use another folder.")
        self.record.update(request=self.request, settings=asdict(self.settings))
        self.record.setdefault("stages", {})

    def _read(self) -> Dict[str, Any]:
        path = os.path.join(self.directory, FIT_FILE)
        if os.path.isfile(path):
            with open(path) as handle:
                return json.load(handle)
        return {}

    def _save(self):
        path = os.path.join(self.directory, FIT_FILE)
        with open(path + ".tmp", "w") as handle:
            json.dump(self.record, handle, indent=1)
        os.replace(path + ".tmp", path)

    def _done(self, stage: str, **facts):
        self.record["stages"][stage] = dict(facts, seconds=round(time.perf_counter() - self._stage_start, 1))
        self._save()

    def spent_s(self) -> float:
        return sum(s.get("seconds", 0.0) for s in self.record["stages"].values())

    def path(self, *parts) -> str:
        return os.path.join(self.directory, *parts)

    def run(self, until: str = STAGES[-1]) -> Dict[str, Any]:
        """Run (or continue) every stage up to and including ``until``; returns that stage's figures."""
        if until not in STAGES:
            raise ValueError(f"unknown fit stage {until!r}; choose one of: {', '.join(STAGES)}.")
        for stage in STAGES[:STAGES.index(until) + 1]:
            if stage in self.record["stages"]:
                continue
            self._stage_start = time.perf_counter()
            getattr(self, f"_{stage}")()
        return self.record["stages"][until]

    def _molecule(self):
        from . import systems

        systems.write_pdb(self.molecule.topology, self.molecule.positions * unit.nanometer, self.path("structure.pdb"))
        self._done("molecule", name=self.molecule.name, atoms=len(self.molecule.positions),
                   preset=self.molecule.preset_name, temperature_K=self.molecule.temperature_K)

    def _explore(self):
        s = self.settings
        seconds = s.explore_s if s.explore_s is not None else s.minutes * 60.0 * s.explore_share
        os.makedirs(self.path("explore"), exist_ok=True)
        tasks = [(self.molecule, s, seconds, s.seed * 100 + k, self.path("explore", f"run-{k}.npz"))
                 for k in range(s.workers) if not os.path.isfile(self.path("explore", f"run-{k}.npz"))]
        print(f"exploring with replica exchange: {s.workers} run(s) of {seconds / 60:.1f} min", flush=True)
        _in_workers(_explore, tasks, s.workers, "explore", self.progress)
        runs = [np.load(self.path("explore", f"run-{k}.npz")) for k in range(s.workers)]
        self._done("explore", runs=s.workers, swap_acceptance=[r["swap_acceptance"].tolist() for r in runs],
                   md_steps_per_s=float(np.mean([r["md_steps_per_s"] for r in runs])))

    def _seeds(self):
        from . import systems

        explored = [np.load(self.path("explore", f"run-{k}.npz"))["positions"] for k in range(self.settings.workers)]
        seeds = choose_seeds(self.observables, explored, self.settings.seeds, self.settings.seed)
        os.makedirs(self.path("seeds"), exist_ok=True)
        for k, positions in enumerate(seeds):
            systems.write_pdb(self.molecule.topology, positions * unit.nanometer, self.path("seeds", f"seed-{k:03d}.pdb"))
        states = self.observables.indicators(self.observables.values(seeds), extra=False)
        self._done("seeds", count=len(seeds), states={k: int(v.sum()) for k, v in states.items()})

    def production_ps(self) -> float:
        """MD per seed: ``seed_production_ps``, less if the MD share of the budget would not hold it.

        The speed comes from the exploration (MD steps per second of a worker, exchanges included,
        so the estimate errs on the short side); each run also pays ~2 s of set-up.
        """
        s = self.settings
        if not s.adaptive_production:
            return float(s.seed_production_ps)
        per_run_s = s.minutes * 60.0 * s.md_share / math.ceil(s.seeds / s.workers) - 2.0
        steps_per_s = self.record["stages"]["explore"]["md_steps_per_s"]
        affordable = per_run_s * steps_per_s * SEED_TIMESTEP_PS - s.seed_equilibration_ps
        return float(min(s.seed_production_ps, max(s.save_interval_ps * 20, round(affordable, -1))))

    def _md(self):
        s = self.settings
        production = self.record.setdefault("md_production_ps", self.production_ps())
        self._save()
        tasks = [(self.path("md"), self.path("seeds", f"seed-{k:03d}.pdb"), f"seed-{k:03d}", self.molecule, s,
                  production, s.seed * 1000 + k) for k in range(s.seeds)]
        print(f"MD at {self.molecule.temperature_K:g} K from {s.seeds} seeds, {production:g} ps each", flush=True)
        _in_workers(_seeded_md, tasks, s.workers, "md", self.progress)
        self._done("md", runs=s.seeds, production_ps=production, simulated_ns=s.seeds * production / 1000.0)

    def _train(self):
        import torch

        from .training import get_family
        from .training.runs import write_run_info
        from .training.trainer import TrainConfig, train_flow

        s = self.settings
        torch.set_num_threads(s.workers)
        family = get_family("internal")
        data = family.training_data([self.path("md")], None)
        left = s.minutes * 60.0 - self.spent_s() - s.check_seconds - 30.0
        config = TrainConfig(epochs=s.max_epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                             warmup_steps=100, seed=s.seed, time_limit_s=max(left, 60.0), patience=s.patience)
        torch.manual_seed(s.seed)
        flow = family.build(family.config(s.flow), data)
        write_run_info(self.path("train"), family.name, family.config(flow.config_dict), config, data)
        print(f"training on {data.summary['frames']} frames for up to {config.time_limit_s / 60:.1f} min", flush=True)
        result = train_flow(flow, data.train, data.validation, data.collate, config, self.path("train"),
                            progress=self.progress, loss=data.loss)
        best = min(result.history, key=lambda h: h["val_nll"])
        self._done("train", epochs=len(result.history), best_epoch=best["epoch"],
                   validation_nll_per_atom=best["val_nll"], frames=data.summary["frames"])

    def _export(self):
        from .training.export_commands import export_training_folders

        info = export_training_folders(self.path("train"), self.path("model.pt"),
                                       notes={"fit": {"input": self.request["input"], "molecule": self.molecule.name}})
        # relative to the fit's folder, so a moved or copied folder's record stays true
        self._done("export", model="model.pt", recommended_settings=info.recommended_settings)

    def _check(self):
        from .samplers import TimewarpSampler, TimewarpSettings, equilibrate, run_for

        start = equilibrate(self.molecule, 10.0, self.settings.seed)
        sampler = TimewarpSampler(self.molecule, self.settings.seed, TimewarpSettings(flow=self.path("model.pt")))
        recording = run_for(sampler, start, self.settings.check_seconds, self.observables.values)
        indicators = self.observables.indicators(recording.values, extra=False)
        stats = recording.statistics
        self._done("check", seconds_sampled=recording.elapsed_s, mh_steps=stats["proposals"],
                   acceptance=stats["acceptance_rate"],
                   populations={k: float(v.mean()) for k, v in indicators.items()},
                   visited=[k for k, v in indicators.items() if v.any()],
                   missed=[k for k, v in indicators.items() if not v.any()])


def summary(record: Dict[str, Any], directory: Optional[str] = None) -> str:
    """The fit's summary as text (the model's path inside ``directory``, the fit's folder, when given)."""
    stages, lines = record["stages"], []
    molecule, check = stages["molecule"], stages["check"]
    lines.append(f"{molecule['name']} ({molecule['atoms']} atoms, {molecule['preset']}, {molecule['temperature_K']:g} K)")
    for stage in STAGES:
        lines.append(f"  {stage:<9} {stages[stage]['seconds'] / 60:6.1f} min")
    total = sum(stages[stage]["seconds"] for stage in STAGES)
    lines.append(f"  {'total':<9} {total / 60:6.1f} min")
    lines.append(f"training: {stages['train']['frames']} frames, best validation NLL "
                 f"{stages['train']['validation_nll_per_atom']:.3f} per atom (epoch {stages['train']['best_epoch']})")
    lines.append(f"check: {check['mh_steps']} MH steps in {check['seconds_sampled']:.0f} s, acceptance "
                 f"{check['acceptance']:.3f}")
    for state, population in check["populations"].items():
        lines.append(f"  {state:<24} {population:.4f}")
    if check["missed"]:
        lines.append("not visited in the check: " + ", ".join(check["missed"]))
    model = stages["export"]["model"]
    lines.append(f"model: {os.path.join(directory, model) if directory else model}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser):
    from .systems import DEFAULT_PRESET, PRESETS

    parser.add_argument("input", help="a PDB file of the peptide, or its one-letter sequence")
    parser.add_argument("-o", "--output", required=True, help="the fit's folder (model.pt, fit.json, data, training)")
    parser.add_argument("--capped", action="store_true", help="sequence input: ACE/NME caps (A --capped: alanine dipeptide)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="force field (default %(default)s)")
    parser.add_argument("--forcefield", nargs="+", metavar="XML", help="force-field XML files instead of a preset")
    parser.add_argument("--temperature-k", type=float, help="kelvin (default: the preset's, 310)")
    parser.add_argument("--minutes", type=float, default=FitSettings.minutes, help="wall-clock budget (default %(default)s)")
    parser.add_argument("--workers", type=int, default=FitSettings.workers, help="cores to use (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    settings = FitSettings(minutes=args.minutes, workers=args.workers, seed=args.seed)
    try:
        fit = Fit(args.output, args.input, args.capped, args.preset, args.forcefield, args.temperature_k, settings,
                  progress=not args.no_progress)
        fit.run()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary(fit.record, fit.directory))
    return 0
