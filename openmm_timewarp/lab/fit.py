"""``openmm-timewarp fit``: a user's own peptide to a trained, checked Timewarp model in one command.

Stages, each resumable (``DIR/fit.json`` records what is done; the same command continues):

1. **molecule**: the System from a PDB file or a sequence, or a serialised System and a PDB of its
   atoms for a molecule of any kind (:func:`openmm_timewarp.lab.molecule.load_molecule`; its
   constraints are the System's), minimised, written to ``DIR/structure.pdb``.
2. **explore**: replica exchange (310 K up to 600 K, hydrogen mass repartitioning, 2 fs), one
   independent run per worker, recording every replica's configuration. Nothing is assumed about
   the molecule's metastable states: the hot replicas cross the barriers.
3. **seeds**: starting structures spread over what the exploration found: half by farthest-point
   sampling in the (cos, sin) of every backbone and chi1 torsion (for a molecule that is not a
   peptide: every soft torsion of its bond graph, :mod:`openmm_timewarp.lab.analysis.soft_torsions`),
   over all temperatures, half drawn from the target-temperature replica.
4. **md**: a short MD run at the target temperature from every seed (``DIR/md/seed-NNN``, the
   package's resumable run format): local fluctuations at the right temperature, metastable
   states all represented, rare ones more than their weight. With ``constraints="hbonds"``
   (``fit --constraints hbonds``) the runs constrain the bonds to hydrogen, at 4 fs with 4 amu
   hydrogens, and the model is made for such Systems (it holds those bonds; ``docs/constraints.md``). Metropolis-Hastings corrects any bias
   of the training data; what matters is that the data cover every state.
5. **train**: a state-independent internal-coordinate flow (``--family internal`` without a
   lag) by maximum likelihood, for the time left in the budget (``DIR/train``).
6. **export**: ``DIR/model.pt``, with its recommended move settings.
7. **check**: a short pure-MH run with the exported model: acceptance and the macrostates visited.

Interrupted (killed, even with SIGKILL) and run again, a fit continues: every stage's elapsed time
is written to ``fit.json`` (``running``) every few seconds and counts against the budget; an
exploration run continues from its last saved frames (every 30 s), each MD run from its last
checkpoint, training from ``DIR/train/checkpoint.pt``. Workers die with the process that started
them, and ``DIR/.lock`` (an OS lock that dies with its holder) refuses a second fit of the folder.

``TimewarpIntegrator(..., flow="DIR/model.pt")`` then works as with a shipped model. ``fit``
never reads a reference; ``openmm-timewarp reference`` makes one independently.
"""

import datetime
import math
import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional

import numpy as np
from openmm import unit

from ._resumable import ResumableRecord, atomic_write, folder_lock
from .analysis.observables import observables_of
from .workers import worker_pool

FIT_FILE = "fit.json"
HEARTBEAT_S = 5.0  # how often a running stage's elapsed time is written to fit.json
EXPLORE_SAVE_S = 30.0  # how often an exploration run saves its frames
STAGES = ("molecule", "explore", "seeds", "md", "train", "export", "check")
SEED_TIMESTEP_PS = 0.002  # MD from the seeds: 2 fs with hydrogen mass repartitioning
# MD from the seeds per constraint option: (time step in ps, hydrogen mass in amu). With bonds to
# hydrogen constrained, 4 fs with 4 amu hydrogens is the fastest valid setting (docs/constraints.md).
SEED_MD = {"none": (SEED_TIMESTEP_PS, 3.0), "hbonds": (0.004, 4.0)}


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
        MD (share 0.35) overfitted after 1.7 minutes of training and left half the budget unused (docs/results.md, alanine tetrapeptide).
    replicas : int, optional
        Replica-exchange temperatures (default: 8 for 22 atoms, growing with the square root of size).
    temperature_max_K : float
    seeds : int
        MD runs at the target temperature.
    seed_equilibration_ps, seed_production_ps, save_interval_ps : float
        MD per seed; the production is shortened where the MD share of the budget would not hold it.
    check_seconds : float
        The final MH check.
    built_seeds : int
        Seeds built directly in chosen backbone states instead of found (sequence input only; see
        :func:`built_structures`): every residue's rare Ramachandran regions get seeds even when a
        short exploration never reached them. They come out of the ``seeds`` count.
    explore_s : float, optional
        Seconds of exploration per worker (default: ``explore_share`` of the budget).
    adaptive_production : bool
        Shorten the MD per seed to fit the MD share of the budget (else always ``seed_production_ps``).
    flow : dict
        Fields of :class:`openmm_timewarp.flow.internal.model.InternalFlowConfig`.
    batch_size, learning_rate, max_epochs, patience
        Training (it stops ``patience`` epochs after the best validation NLL, or when the budget is spent).
    seed : int
    constraints : {"none", "hbonds"} or None
        The Systems the model is made for: "hbonds" runs the seeded MD with bonds to hydrogen
        constrained (4 fs, 4 amu hydrogens, :data:`SEED_MD`), trains a flow that holds those bonds
        and checks it on such a System. None: a System file's own constraints, else "none".
    warm_start : str, optional
        A transferable ``peptides`` model (file or shipped name): the train stage fine-tunes it on
        this molecule's MD (:func:`openmm_timewarp.lab.training.peptides.finetune_peptides`) instead
        of training a per-molecule flow from scratch, and the export is a ``peptides`` file.
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
    built_seeds: int = 0
    explore_s: Optional[float] = None
    adaptive_production: bool = True
    flow: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 512
    learning_rate: float = 1e-3
    max_epochs: int = 200
    patience: int = 8
    seed: int = 1
    constraints: Optional[str] = "none"
    warm_start: Optional[str] = None

    def __post_init__(self):
        if self.constraints is not None and self.constraints not in SEED_MD:
            raise ValueError(f"constraints must be one of {', '.join(SEED_MD)}, got {self.constraints!r}.")


# ------------------------------------------------------------------------------------------------ workers
def _explore(molecule, settings: FitSettings, seconds: float, seed: int, path: str) -> str:
    """One replica-exchange run; saves every replica's configuration (every 2 ps) to ``path``.

    The frames so far are saved every :data:`EXPLORE_SAVE_S` seconds to ``path``'s ``.partial.npz``;
    a run started again continues from there (every replica from its last saved configuration) for
    the seconds that remain.
    """
    from openmm import unit as units

    from .samplers import ReplicaExchange, ReplicaExchangeSettings
    from .samplers.replica_exchange import replica_count

    partial_path = path[:-len(".npz")] + ".partial.npz" if path.endswith(".npz") else path + ".partial.npz"
    frames, done_s, md_steps, attempts, accepted, segment = [], 0.0, 0, None, None, 0
    if os.path.isfile(partial_path):
        with np.load(partial_path) as saved:
            frames = list(saved["positions"])
            done_s, md_steps = float(saved["seconds"]), int(saved["md_steps"])
            attempts, accepted = saved["attempts"], saved["accepted"]
            segment = int(saved["segment"]) + 1
    sampler = ReplicaExchange(molecule, seed + 7919 * segment, ReplicaExchangeSettings(
        num_replicas=settings.replicas or replica_count(len(molecule.positions), molecule.temperature_K,
                                                        settings.temperature_max_K),
        temperature_max_K=settings.temperature_max_K, constraints=molecule.own_constraints))
    sampler.setup(molecule.positions)
    if frames:  # context k starts at temperature k: give it the last saved configuration at that temperature
        for context, positions in zip(sampler.contexts, frames[-1]):
            context.setPositions(positions.astype(np.float64) * units.nanometer)
    if attempts is None:
        attempts, accepted = np.zeros_like(sampler._attempts), np.zeros_like(sampler._accepted)

    def totals():
        stats = sampler.statistics()
        return (done_s + time.perf_counter() - start, md_steps + stats["md_steps"],
                attempts + sampler._attempts, accepted + sampler._accepted)

    def save_partial():
        elapsed, steps, tries, hits = totals()
        atomic_write(partial_path, lambda tmp: np.savez(
            tmp, positions=np.stack(frames), seconds=elapsed, md_steps=steps, attempts=tries, accepted=hits,
            segment=segment), suffix=".npz")

    start = last_save = time.perf_counter()
    while done_s + time.perf_counter() - start < seconds:
        for _ in range(4):
            sampler.advance()
        frames.append(sampler.all_positions().astype(np.float32))
        if time.perf_counter() - last_save >= EXPLORE_SAVE_S:
            save_partial()
            last_save = time.perf_counter()
    elapsed, steps, tries, hits = totals()
    rate = np.divide(hits, tries, out=np.zeros(len(tries)), where=tries > 0)
    atomic_write(path, lambda tmp: np.savez(
        tmp, positions=np.stack(frames), temperatures_K=np.asarray(sampler.temperatures), swap_acceptance=rate,
        md_steps_per_s=steps / max(elapsed, 1e-9)), suffix=".npz")
    if os.path.isfile(partial_path):
        os.remove(partial_path)
    return path


def _md_platform(molecule) -> str:
    """The fastest platform for the seeded MD, timed in a worker (one thread, as the runs will have)."""
    from . import systems

    return systems.best_platform(molecule.system(3.0), molecule.positions).getName()


def _seeded_md(directory: str, pdb: str, name: str, molecule, settings: FitSettings, production_ps: float,
               seed: int, platform: str = "auto") -> str:
    """MD at the molecule's temperature from one seed structure, in the package's resumable run format."""
    from .md.rundir import METADATA_FILE
    from .md.simulate import simulate

    if os.path.isfile(os.path.join(directory, name, METADATA_FILE)):
        platform = "auto"  # a run continues on the platform it began on
    timestep_ps, hydrogen_mass = SEED_MD[settings.constraints]
    simulate(directory, start_pdb=pdb, name=name, preset=molecule.preset, temperature_K=molecule.temperature_K,
             timestep_ps=timestep_ps, hydrogen_mass_amu=hydrogen_mass, save_interval_ps=settings.save_interval_ps,
             equilibration_ps=settings.seed_equilibration_ps, production_ps=production_ps,
             seed=seed, platform=platform, progress=False, constraints=settings.constraints)
    return name


def _in_workers(function, tasks, workers: int, description: str, progress: bool,
                deadline: Optional[float] = None) -> List[Any]:
    """Results of ``function(*task)`` for every task, in order, on ``workers`` processes.

    With a ``deadline`` (a :func:`time.time` value), tasks not started by then are dropped (the
    running ones finish), so a stage ends near its share of the budget even when the machine is
    slower than its start measured; only the results of the tasks that ran are returned.
    """
    from tqdm.auto import tqdm

    with worker_pool(workers) as pool:
        futures = [pool.submit(function, *task) for task in tasks]
        results = []
        with tqdm(total=len(futures), desc=description, disable=not progress) as bar:
            for future in futures:
                if deadline is not None and not future.done():
                    try:
                        future.result(timeout=max(deadline - time.time(), 0.0))
                    except FutureTimeout:
                        for pending in futures:
                            pending.cancel()
                if future.cancelled():
                    continue
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
    if angles.shape[1] == 0:  # no torsion to spread over (a molecule of three atoms): draws from every temperature
        spread = rng.choice(len(every), size=count - count // 2, replace=len(every) < count - count // 2)
    else:
        spread = farthest_points(np.concatenate([np.cos(angles), np.sin(angles)], axis=1), count - count // 2, rng)
    typical = rng.choice(len(coldest), size=count // 2, replace=len(coldest) < count // 2)
    return np.concatenate([every[spread], coldest[typical]])


# backbone (phi, psi) in degrees of the regions built seeds cycle through, rare ones first
BUILT_REGIONS = {"alphaL": (60.0, 40.0), "C7ax": (70.0, -70.0), "beta": (-120.0, 140.0), "alphaR": (-65.0, -40.0)}


def built_structures(sequence: str, capped: bool, system, count: int) -> np.ndarray:
    """``count`` minimised structures [count, N, 3] (nm) of a built peptide in chosen backbone states.

    Structure k puts residue r in region ``(k + r) mod 4`` of :data:`BUILT_REGIONS` (alphaL, C7ax,
    beta, alphaR), so that every residue visits every region within four structures, in varied
    combinations. Proline keeps its ring's phi. The atom order is the builder's, as for a
    sequence given to :class:`Fit`.
    """
    from . import systems

    regions = list(BUILT_REGIONS.values())
    residues = systems.parse_sequence(sequence)
    out = []
    for k in range(count):
        chosen = [regions[(k + r) % len(regions)] for r in range(len(residues))]
        phi = [None if name == "PRO" else p for name, (p, _) in zip(residues, chosen)]
        topology, positions = systems.build_peptide(sequence, capped, phi=phi, psi=[q for _, q in chosen])
        minimised, _ = systems.minimize(system, positions)
        out.append(minimised.value_in_unit(unit.nanometer))
    return np.asarray(out, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ the fit
class Fit:
    """The fit of one molecule in one folder (see the module docstring)."""

    def __init__(self, directory: str, source: str, capped: bool = False, preset: str = None, forcefield=None,
                 temperature_K: float = None, settings: FitSettings = None, progress: bool = True,
                 structure: Optional[str] = None):
        from .systems import DEFAULT_PRESET

        from .molecule import is_system_file, load_molecule

        self.directory = os.path.abspath(directory)
        self.settings = settings or FitSettings()
        self.progress = progress
        system_file = is_system_file(source)
        self.request = {"input": source, "capped": bool(capped), "preset": None if system_file else
                        preset or DEFAULT_PRESET, "forcefield": list(forcefield or []), "temperature_K": temperature_K}
        if structure is not None:
            self.request["structure"] = structure
        # the molecule first: bad input fails before anything is written
        self.molecule = load_molecule(source, bool(capped), preset, forcefield or None, temperature_K,
                                      structure)
        self.settings = replace(self.settings, constraints=self._constraints(system_file))
        if system_file:  # a changed System file is a different molecule: the folder refuses it
            self.request["system_sha256"] = self.molecule.preset.sha256
        if self.settings.constraints != "none":  # a folder fitted without the option continues as it was
            self.request["constraints"] = self.settings.constraints
        self.observables = observables_of(self.molecule.topology)
        os.makedirs(self.directory, exist_ok=True)
        self._store = ResumableRecord(self.directory, FIT_FILE, self.request, what="a fit", key="request")
        self.record = self._store.data
        self.record.update(settings=asdict(self.settings))
        self.record.setdefault("stages", {})
        self.record.setdefault("running", {})
        self._record_lock = threading.Lock()
        self._stage_start = None

    def _constraints(self, system_file: bool) -> str:
        """The constraints the model is made for: a System file's own, else the settings' (default none)."""
        asked = self.settings.constraints
        if not system_file:
            return asked or "none"
        own = self.molecule.preset.constraints
        if asked not in (None, own):
            raise ValueError(f"the System in {self.request['input']!r} has constraints={own!r}, and a System file's "
                             f"constraints are its own: leave out --constraints {asked}, or serialise the System "
                             "with the constraints you want.")
        return own

    def _save(self):
        with self._record_lock:
            self._store.save()

    def stage_seconds(self, stage: str) -> float:
        """Seconds spent in ``stage``: all of it once done; so far (interrupted runs included) while running."""
        if stage in self.record["stages"]:
            return float(self.record["stages"][stage].get("seconds", 0.0))
        if self._stage_start is not None and self._stage_start[0] == stage:
            _, start, before = self._stage_start
            return before + time.perf_counter() - start
        return float(self.record["running"].get(stage, {}).get("seconds", 0.0))

    @contextmanager
    def _clock(self, stage: str):
        """Time ``stage``: its elapsed seconds (earlier, interrupted runs included) go into ``fit.json``
        ``running`` every :data:`HEARTBEAT_S` seconds, so a killed fit still counts them."""
        entry = self.record["running"].setdefault(stage, {"seconds": 0.0})
        entry.setdefault("started", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        before = float(entry.get("seconds", 0.0))
        self._stage_start = (stage, time.perf_counter(), before)
        stop = threading.Event()

        def beat():
            while not stop.wait(HEARTBEAT_S):
                if stage in self.record["stages"]:
                    return
                entry["seconds"] = round(self.stage_seconds(stage), 1)
                try:
                    self._save()
                except RuntimeError:  # the record changed while being written; the next beat writes it
                    pass

        thread = threading.Thread(target=beat, daemon=True, name=f"fit-{stage}-clock")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            if stage not in self.record["stages"]:
                entry["seconds"] = round(self.stage_seconds(stage), 1)
                self._save()
            self._stage_start = None

    def _done(self, stage: str, **facts):
        self.record["stages"][stage] = dict(facts, seconds=round(self.stage_seconds(stage), 1))
        self.record["running"].pop(stage, None)
        self._save()

    def spent_s(self) -> float:
        """Seconds spent so far: the stages done, and what the unfinished ones have used (interrupted runs included)."""
        return sum(self.stage_seconds(stage) for stage in set(self.record["stages"]) | set(self.record["running"]))

    def training_time_limit_s(self) -> float:
        """Training time for the train stage: what the budget leaves after everything else.

        The trainer counts the seconds of training its checkpoint holds (finished epochs and part of
        one) against its limit, so those are added back: they are already in :meth:`spent_s`
        through the train stage's clock.
        """
        from .training.trainer import trained_seconds

        s = self.settings
        left = s.minutes * 60.0 - self.spent_s() - s.check_seconds - 30.0
        return max(left, 60.0) + trained_seconds(self.path("train"))

    def path(self, *parts) -> str:
        return os.path.join(self.directory, *parts)

    def run(self, until: str = STAGES[-1]) -> Dict[str, Any]:
        """Run (or continue) every stage up to and including ``until``; returns that stage's figures."""
        if until not in STAGES:
            raise ValueError(f"unknown fit stage {until!r}; choose one of: {', '.join(STAGES)}.")
        with folder_lock(self.directory, "another fit"):
            for stage in STAGES[:STAGES.index(until) + 1]:
                if stage in self.record["stages"]:
                    continue
                with self._clock(stage):
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

        s = self.settings
        explored = [np.load(self.path("explore", f"run-{k}.npz"))["positions"] for k in range(s.workers)]
        built = s.built_seeds if not os.path.isfile(self.request["input"]) else 0  # PDB input: the user's atom order
        seeds = choose_seeds(self.observables, explored, s.seeds - built, s.seed)
        if built:
            sequence, capped = systems.sequence_of(self.molecule.topology)
            seeds = np.concatenate([seeds, built_structures(sequence, capped, self.molecule.system(), built)])
        os.makedirs(self.path("seeds"), exist_ok=True)
        for k, positions in enumerate(seeds):
            systems.write_pdb(self.molecule.topology, positions * unit.nanometer, self.path("seeds", f"seed-{k:03d}.pdb"))
        states = self.observables.indicators(self.observables.values(seeds), extra=False)
        self._done("seeds", count=len(seeds), built=built, states={k: int(v.sum()) for k, v in states.items()})

    def production_ps(self) -> float:
        """MD per seed: ``seed_production_ps``, less if the MD share of the budget would not hold it.

        The speed comes from the exploration (MD steps per second of a worker, exchanges included,
        so the estimate errs on the short side; a constrained step costs about as much); each run
        also pays ~2 s of set-up.
        """
        s = self.settings
        if not s.adaptive_production:
            return float(s.seed_production_ps)
        per_run_s = s.minutes * 60.0 * s.md_share / math.ceil(s.seeds / s.workers) - 2.0
        steps_per_s = self.record["stages"]["explore"]["md_steps_per_s"]
        affordable = per_run_s * steps_per_s * SEED_MD[s.constraints][0] - s.seed_equilibration_ps
        return float(min(s.seed_production_ps, max(s.save_interval_ps * 20, round(affordable, -1))))

    def _md(self):
        s = self.settings
        production = self.record.setdefault("md_production_ps", self.production_ps())
        if "md_platform" not in self.record:  # one platform for every run, chosen once
            self.record["md_platform"] = _in_workers(_md_platform, [(self.molecule,)], 1, "platform", False)[0]
        self._save()
        tasks = [(self.path("md"), self.path("seeds", f"seed-{k:03d}.pdb"), f"seed-{k:03d}", self.molecule, s,
                  production, s.seed * 1000 + k, self.record["md_platform"]) for k in range(s.seeds)]
        print(f"MD at {self.molecule.temperature_K:g} K from {s.seeds} seeds, {production:g} ps each", flush=True)
        deadline = None
        if s.adaptive_production:  # a budget: seeds not started when the MD share is spent are left out
            deadline = time.time() + s.minutes * 60.0 * (s.explore_share + s.md_share) - self.spent_s()
        runs = len(_in_workers(_seeded_md, tasks, s.workers, "md", self.progress, deadline))
        self._done("md", runs=runs, production_ps=production, simulated_ns=runs * production / 1000.0)

    def _train(self):
        """Train (or continue training from ``DIR/train/checkpoint.pt``) for the time the budget leaves."""
        from .training.entry import train_family

        s = self.settings
        limit = self.training_time_limit_s()
        if s.warm_start:
            return self._finetune(limit)
        result = train_family("internal", [self.path("md")], lag=None, splits=None, family_config=s.flow,
                              constraints=s.constraints,
                              train_config=dict(epochs=s.max_epochs, batch_size=s.batch_size,
                                                learning_rate=s.learning_rate, warmup_steps=100, seed=s.seed,
                                                time_limit_s=limit, patience=s.patience),
                              output=self.path("train"), progress=self.progress, threads=s.workers,
                              announce=lambda data, config: print(
                                  f"training on {data.summary['frames']} frames for up to "
                                  f"{config.time_limit_s / 60:.1f} min", flush=True))
        best = min(result.history, key=lambda h: h["val_nll"])
        self._done("train", epochs=len(result.history), best_epoch=best["epoch"],
                   validation_nll_per_atom=best["val_nll"], frames=result.data.summary["frames"])

    def _finetune(self, limit_s: float):
        from .training.peptides import finetune_peptides

        print(f"fine-tuning {self.settings.warm_start} for up to {limit_s / 60:.1f} min", flush=True)
        result = finetune_peptides(self.settings.warm_start, [self.path("md")], self.path("train"), self.molecule.name,
                                   minutes=limit_s / 60.0, seed=self.settings.seed, progress=self.progress)
        last = result.history[-1]
        self._done("train", epochs=result.steps, best_epoch=result.steps, frames=result.frames,
                   validation_nll_per_atom=last["validation_nll"], warm_start=self.settings.warm_start)

    def _export(self):
        from .training.export import export_training_folders

        if self.settings.warm_start:
            from .training.peptides import export_finetuned

            export_finetuned(self.path("train"), self.settings.warm_start, self.path("model.pt"), self.molecule.name)
            self._done("export", model="model.pt", recommended_settings=None)
            return

        info = export_training_folders(self.path("train"), self.path("model.pt"),
                                       notes={"fit": {"input": self.request["input"], "molecule": self.molecule.name}})
        # relative to the fit's folder, so a moved or copied folder's record stays true
        self._done("export", model="model.pt", recommended_settings=info.recommended_settings)

    def _check(self):
        from .samplers import TimewarpSampler, TimewarpSettings, equilibrate, run_for

        start = equilibrate(self.molecule, 10.0, self.settings.seed)
        timestep_ps, hydrogen_mass = SEED_MD[self.settings.constraints]
        sampler = TimewarpSampler(self.molecule, self.settings.seed, TimewarpSettings(
            flow=self.path("model.pt"), constraints=self.settings.constraints, timestep_fs=1000.0 * timestep_ps,
            hydrogen_mass_amu=hydrogen_mass))
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
