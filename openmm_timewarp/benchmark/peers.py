"""Peer sampling methods for the alanine-dipeptide benchmark: replica exchange and metadynamics.

Both drivers follow the benchmark's driver contract (``openmm_timewarp.benchmark.methods``):
``driver(settings, budget_s, seed, progress=None) -> dict`` (``PEER_METHODS`` maps names to them;
importing this module registers them, :func:`register_peer_methods`). A
driver reads the settings it knows (shared ones such as ``temperature_K``, ``friction_per_ps``,
``timestep_fs``, ``preset``, ``equilibration_ps``, ``record_interval_ps`` keep the benchmark's meaning)
and ignores the rest; it starts from the benchmark's common configuration of replica ``seed``
(``methods.equilibrated_state``); building and equilibration happen before the clock starts and are
reported as ``setup_s``; it stops at the first sample recorded after ``budget_s``. The returned dict holds

- ``wall_s``, ``phi``, ``psi``: numpy arrays, one entry per sample (seconds since the clock started;
  degrees on (-180, 180]);
- ``weights`` (metadynamics only): reweighting factors of the samples;
- ``elapsed_s``, ``setup_s``, ``sample_interval_ps`` and ``stats`` (``samples``, ``md_steps``,
  ``simulated_ns`` and method-specific figures such as the swap acceptance per pair);
- ``estimates``: list of (wall_s, {state: population}) at regular checkpoints (geometrically spaced,
  :func:`openmm_timewarp.benchmark.accuracy.checkpoint_times`), each made only from what the run had by
  then;
- ``population_source``: ``"samples"`` (score the samples) or ``"estimates"`` (score ``estimates``);
- ``method``, ``seed``, ``budget_s`` and ``settings`` (every setting used, units in the key names).

Replica exchange
----------------
Temperature replica exchange (parallel tempering) as a loop over OpenMM Contexts in one process:
one Reference Context with a ``LangevinMiddleIntegrator`` per temperature, neighbour swaps every
``swap_interval_ps`` alternating even and odd pairs, accepted with probability
min(1, exp((beta_i - beta_j)(U_i - U_j))) (U_i: energy of the configuration at temperature T_i);
an accepted swap exchanges the two replicas' temperatures (their integrators' set temperatures) and
rescales their velocities by sqrt(T_new / T_old). Defaults are the ladder that made the reference
ensemble: 8 replicas geometric from 310 to 600 K, swaps every 0.5 ps.

Why a hand-written loop rather than openmmtools' ``ReplicaExchangeSampler`` (not a dependency): for a
22-atom molecule the MD itself costs ~25 us per step on Reference, so a swap interval of 8 x 500 steps
is ~0.1 s of dynamics, and any per-iteration overhead of a general sampler (NetCDF storage,
context-cache switching, MCMC-move objects) competes with it directly. This loop's own overhead is one
energy evaluation per replica per swap interval, a velocity read/write per accepted swap and one position
read for the output. Measured on one core (Reference, both cores of the machine busy with other work):
8 replicas 310-600 K, swaps every 0.5 ps, 3.36 ps of 310 K samples per wall second, against 3.44 ps/s
for the same 8 x 500 ``integrator.step`` calls with no exchange and no output at all: 97.5% of the bound
that no replica-exchange implementation using these integrators can beat, so a general sampler could at
best gain ~2.5% and would likely lose more to its own bookkeeping. (The reference data set's runs of
such a loop gave 3.9-4.1 ps/s per core.)

Metadynamics
------------
Well-tempered metadynamics with ``openmm.app.Metadynamics`` on phi and psi (``CustomTorsionForce``
collective variables, periodic on [-pi, pi)), bias factor, Gaussian height, deposition frequency and
width as settings (defaults: 6, 1.2 kJ/mol, every 500 steps, 20 degrees; the widely used choice for
alanine dipeptide). Measured throughput, bias (a ``CustomCVForce`` over a tabulated 2-D spline) and
Gaussian deposition included: 16-21 ps per wall second on Reference on a busy core (the reference data
set's unbiased MD: 33 ps/s on a busy core, ~42 ps/s alone).

The **reported populations** (``estimates``, ``population_source = "estimates"``) come from the
free-energy estimate F(phi, psi) = -(gamma / (gamma - 1)) V(phi, psi) (``getFreeEnergy``), by
integrating exp(-F / kT) over each state's region of the grid (:func:`populations_from_free_energy`).
The samples also carry reweighting factors, w_i = exp((V(s_i, t_i) - c(t_i)) / kT) with the bias at the
time of the sample and the Tiwary-Parrinello offset c(t) (:func:`bias_offset`), so that a weighted
average over the samples is a second, causal estimate (score it with ``source="samples"``).
"""

import math
import time

import numpy as np

from . import accuracy

# kJ/mol/K
_GAS_CONSTANT = 0.008314462618

# Settings shared with the other methods of the benchmark (``methods.DEFAULT_SETTINGS``) keep their names
# and meaning: temperature_K, friction_per_ps, timestep_fs, preset, equilibration_ps (of the common start),
# record_interval_ps.
REPLICA_EXCHANGE_DEFAULTS = {
    "temperature_K": 310.0,            # the lowest rung: the temperature sampled
    "temperature_max_K": 600.0,
    "num_replicas": 8,
    "temperatures_K": None,            # an explicit ladder instead (its first must equal temperature_K)
    "swap_interval_ps": 0.5,           # one sample of the lowest temperature per exchange attempt
    "timestep_fs": 1.0,
    "friction_per_ps": 1.0,
    "equilibration_ps": 10.0,          # of the common starting configuration (methods.equilibrated_state)
    "replica_equilibration_ps": 0.0,   # then, before the clock, at each replica's own temperature
    "preset": "amber99sbildn-obc",
    "platform": "Reference",
    "num_checkpoints": 100,
}

METADYNAMICS_DEFAULTS = {
    "temperature_K": 310.0,
    "bias_factor": 6.0,
    "height_kJ_mol": 1.2,
    "frequency_steps": 500,            # a Gaussian every this many steps
    "width_deg": 20.0,
    "grid_points": None,               # per variable; None: OpenMM's default, ceil(5 * 360 / width)
    "record_interval_ps": 0.5,         # one sample every this much simulated time
    "timestep_fs": 1.0,
    "friction_per_ps": 1.0,
    "equilibration_ps": 10.0,          # of the common starting configuration (methods.equilibrated_state)
    "preset": "amber99sbildn-obc",
    "platform": "Reference",
    "num_checkpoints": 100,
    "fes_subdivisions": 8,             # sub-points per grid cell and axis when splitting cells between states
}


def method_settings(defaults, settings):
    """A method's settings: its defaults updated with the keys of ``settings`` that it knows.

    Keys it does not know are ignored (the benchmark passes one settings dict to every method).

    Parameters
    ----------
    defaults : dict
    settings : dict or None

    Returns
    -------
    dict
        A new dict with exactly the keys of ``defaults``.
    """
    settings = settings or {}
    return {key: settings.get(key, value) for key, value in defaults.items()}


def _kelvin(value):
    from openmm import unit

    return float(value.value_in_unit(unit.kelvin)) if unit.is_quantity(value) else float(value)


def _integrator_seed(seed, index):
    """A non-zero OpenMM random seed for replica ``index`` (0 would mean 'pick one at random')."""
    return 1 + (int(seed) * 1009 + int(index)) % 2_000_000_000


def geometric_ladder(minimum, maximum, count):
    """Temperatures spaced geometrically from ``minimum`` to ``maximum``.

    Parameters
    ----------
    minimum, maximum : openmm.unit.Quantity or float
        Temperatures (kelvin if floats).
    count : int
        Number of temperatures (1 gives just ``minimum``).

    Returns
    -------
    list of openmm.unit.Quantity
        Increasing, in kelvin.
    """
    from openmm import unit

    low, high, count = _kelvin(minimum), _kelvin(maximum), int(count)
    if count < 1 or low <= 0 or high < low:
        raise ValueError(f"need count >= 1 and 0 < minimum <= maximum, got {count}, {low} K, {high} K")
    values = [low] if count == 1 else list(np.geomspace(low, high, count))
    return [float(t) * unit.kelvin for t in values]


def swap_log_probability(beta_low, beta_high, energy_low, energy_high):
    """Log of the Metropolis ratio for exchanging configurations between two temperatures.

    The configuration with energy ``energy_low`` is at inverse temperature ``beta_low`` and the other at
    ``beta_high``; after the exchange each is at the other's temperature. The ratio of the joint
    Boltzmann weights after / before is exp((beta_low - beta_high) (energy_low - energy_high)).

    Parameters
    ----------
    beta_low, beta_high : float
        Inverse temperatures, 1/(R T) in mol/kJ.
    energy_low, energy_high : float
        Potential energies in kJ/mol of the configurations now at those temperatures.

    Returns
    -------
    float
        Accept the swap with probability min(1, exp(returned value)).
    """
    return (beta_low - beta_high) * (energy_low - energy_high)


class ParallelTempering:
    """Temperature replica exchange: one OpenMM Context per temperature, in this process.

    Parameters
    ----------
    system : openmm.System
        Shared by all replicas (not modified).
    positions : openmm.unit.Quantity or array_like
        Starting positions of every replica (nm if unitless).
    temperatures : sequence of openmm.unit.Quantity or float
        Increasing temperatures (kelvin if floats); the first is the one sampled for output.
    swap_interval : openmm.unit.Quantity
        Simulated time of each replica between exchange attempts (a whole number of steps).
    timestep : openmm.unit.Quantity
    friction : openmm.unit.Quantity
        Langevin friction coefficient (1/time).
    platform : openmm.Platform, optional
        Default Reference.
    seed : int
        Seeds the integrators, the initial velocities and the exchange decisions.
    """

    def __init__(self, system, positions, temperatures, swap_interval=None, timestep=None, friction=None,
                 platform=None, seed=1):
        import openmm
        from openmm import unit

        swap_interval = 0.5 * unit.picosecond if swap_interval is None else swap_interval
        timestep = 1.0 * unit.femtosecond if timestep is None else timestep
        friction = 1.0 / unit.picosecond if friction is None else friction
        platform = platform or openmm.Platform.getPlatformByName("Reference")
        kelvins = np.array([_kelvin(t) for t in temperatures], dtype=float)
        if len(kelvins) < 1 or np.any(kelvins <= 0) or np.any(np.diff(kelvins) <= 0):
            raise ValueError(f"temperatures must be positive and increasing, got {kelvins.tolist()}")
        steps = swap_interval / timestep
        self._steps = int(round(steps))
        if self._steps < 1 or abs(steps - self._steps) > 1e-6 * max(1.0, steps):
            raise ValueError(f"the swap interval ({swap_interval}) must be a whole number of time steps ({timestep})")
        self._kelvins = kelvins
        self._betas = 1.0 / (_GAS_CONSTANT * kelvins)
        self._timestep = timestep
        self._integrators, self._contexts = [], []
        for k, kelvin in enumerate(kelvins):
            integrator = openmm.LangevinMiddleIntegrator(kelvin * unit.kelvin, friction, timestep)
            integrator.setRandomNumberSeed(_integrator_seed(seed, k))
            context = openmm.Context(system, integrator, platform)
            context.setPositions(positions)
            context.setVelocitiesToTemperature(kelvin * unit.kelvin, _integrator_seed(seed, k))
            self._integrators.append(integrator)
            self._contexts.append(context)
        self._replica_at = list(range(len(kelvins)))  # temperature index -> context index
        self._rng = np.random.default_rng(int(seed))
        self._cycles = 0
        self.reset_statistics()

    @property
    def num_replicas(self):
        """Number of replicas (= temperatures)."""
        return len(self._kelvins)

    @property
    def temperatures(self):
        """The ladder, increasing, as a list of openmm.unit.Quantity in kelvin."""
        from openmm import unit

        return [float(t) * unit.kelvin for t in self._kelvins]

    @property
    def steps_per_swap(self):
        """Integration steps of each replica between exchange attempts."""
        return self._steps

    @property
    def replica_at(self):
        """Which replica (context index) is at each temperature, lowest first."""
        return tuple(self._replica_at)

    @property
    def cycles(self):
        """Exchange attempts made so far (each one: every replica integrated, then one set of pairs)."""
        return self._cycles

    @property
    def swap_attempts(self):
        """Exchange attempts per neighbour pair (i, i+1) since the last ``reset_statistics``."""
        return self._attempts.copy()

    @property
    def swap_acceptance(self):
        """Accepted fraction of the exchange attempts per neighbour pair (NaN where none)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._attempts > 0, self._accepted / np.maximum(self._attempts, 1), np.nan)

    def reset_statistics(self):
        """Zero the exchange counters (e.g. after equilibration)."""
        self._attempts = np.zeros(max(self.num_replicas - 1, 0), dtype=int)
        self._accepted = np.zeros(max(self.num_replicas - 1, 0), dtype=int)

    def run_cycle(self):
        """Integrate every replica for one swap interval, then attempt exchanges.

        Even cycles try the pairs (0, 1), (2, 3), ...; odd cycles (1, 2), (3, 4), ...
        """
        from openmm import unit

        for integrator in self._integrators:
            integrator.step(self._steps)
        energies = [c.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
                    for c in self._contexts]
        for i in range(self._cycles % 2, self.num_replicas - 1, 2):
            self._attempt(i, energies)
        self._cycles += 1

    def _attempt(self, i, energies):
        a, b = self._replica_at[i], self._replica_at[i + 1]
        log_ratio = swap_log_probability(self._betas[i], self._betas[i + 1], energies[a], energies[b])
        self._attempts[i] += 1
        if log_ratio >= 0.0 or self._rng.random() < math.exp(log_ratio):
            self._accepted[i] += 1
            self._replica_at[i], self._replica_at[i + 1] = b, a
            self._move(a, i, i + 1)
            self._move(b, i + 1, i)

    def _move(self, replica, old, new):
        """Put a replica at temperature index ``new``, rescaling its velocities from ``old``."""
        from openmm import unit

        self._integrators[replica].setTemperature(self._kelvins[new] * unit.kelvin)
        context = self._contexts[replica]
        velocities = context.getState(getVelocities=True).getVelocities(asNumpy=True)
        context.setVelocities(velocities * math.sqrt(self._kelvins[new] / self._kelvins[old]))

    def positions(self, index=0):
        """Positions of the configuration at temperature ``index`` (0: the lowest).

        Returns
        -------
        openmm.unit.Quantity
            numpy array [num_atoms, 3] in nm.
        """
        from openmm import unit

        state = self._contexts[self._replica_at[index]].getState(getPositions=True)
        return state.getPositions(asNumpy=True).in_units_of(unit.nanometer)

    def potential_energy(self, index=0):
        """Potential energy of the configuration at temperature ``index`` (openmm.unit.Quantity, kJ/mol)."""
        return self._contexts[self._replica_at[index]].getState(getEnergy=True).getPotentialEnergy()


def _common_start(config, seed):
    """Alanine dipeptide's topology, System, platform and the benchmark's common start of replica ``seed``."""
    from .. import systems
    from .methods import equilibrated_state

    topology, _ = systems.load_alanine_dipeptide()
    system = systems.create_system(topology, config["preset"])
    platform = systems.platform_by_name(config["platform"], system.getNumParticles())
    return topology, system, platform, equilibrated_state(config, seed)


def _sample_estimates(wall_s, phi, psi, budget_s, num_checkpoints):
    """(t, {state: population}) at the checkpoints that have samples, from the samples up to t."""
    from ..analysis import REGION_NAMES

    times = accuracy.checkpoint_times(budget_s, num_checkpoints)
    populations = accuracy.populations_at(wall_s, phi, psi, times, None, REGION_NAMES)
    return [(float(t), {s: float(populations[s][k]) for s in REGION_NAMES})
            for k, t in enumerate(times) if np.isfinite(populations[REGION_NAMES[0]][k])]


def _ladder(config):
    from openmm import unit

    if config["temperatures_K"] is None:
        return geometric_ladder(config["temperature_K"], config["temperature_max_K"], config["num_replicas"])
    ladder = [_kelvin(t) * unit.kelvin for t in config["temperatures_K"]]
    if abs(ladder[0].value_in_unit(unit.kelvin) - float(config["temperature_K"])) > 1e-6:
        raise ValueError(f"the ladder starts at {ladder[0]}, but temperature_K is {config['temperature_K']}: "
                         "the lowest temperature is the one sampled")
    return ladder


def run_replica_exchange(settings=None, budget_s=60.0, seed=1, progress=None):
    """Sample alanine dipeptide at ``temperature_K`` by replica exchange, for a wall-clock budget.

    Every replica starts from the benchmark's common configuration of this seed
    (``methods.equilibrated_state``) with velocities drawn at its own temperature; after
    ``replica_equilibration_ps`` (default 0) the clock starts, and the configuration at the lowest
    temperature is recorded after every exchange attempt until the first sample after ``budget_s``.

    Parameters
    ----------
    settings : dict, optional
        Keys of ``REPLICA_EXCHANGE_DEFAULTS`` override the defaults; other keys are ignored.
    budget_s : float or openmm.unit.Quantity
        Wall-clock seconds of sampling (setup before the clock is reported as ``setup_s``).
    seed : int
        At least 1.
    progress : callable, optional
        ``progress(elapsed_s)`` after each sample.

    Returns
    -------
    dict
        ``wall_s``, ``phi``, ``psi``; ``elapsed_s``, ``setup_s``, ``sample_interval_ps`` (the swap
        interval); ``estimates`` (populations of the samples so far at the checkpoints) and
        ``population_source`` ("samples"); ``method``, ``seed``, ``budget_s``, ``settings`` (the ladder
        used in ``temperatures_K``); ``stats``: ``samples``, ``md_steps`` and ``simulated_ns`` (all
        replicas), ``sampled_ns`` (at the lowest temperature), ``ps_per_s`` (of lowest-temperature samples
        per wall second), ``md_steps_per_s``, ``swap_acceptance`` and ``swap_attempts`` (per neighbour
        pair, lowest first).
    """
    from openmm import unit

    from ..analysis import torsions_from_positions

    setup_start = time.perf_counter()
    budget = accuracy.as_seconds(budget_s)
    if not budget > 0:
        raise ValueError(f"budget_s must be positive, got {budget}")
    config = method_settings(REPLICA_EXCHANGE_DEFAULTS, settings)
    ladder = _ladder(config)
    config.update(temperatures_K=[t.value_in_unit(unit.kelvin) for t in ladder], num_replicas=len(ladder),
                  temperature_max_K=ladder[-1].value_in_unit(unit.kelvin))
    topology, system, platform, positions = _common_start(config, seed)
    sampler = ParallelTempering(system, positions, ladder, config["swap_interval_ps"] * unit.picosecond,
                                config["timestep_fs"] * unit.femtosecond, config["friction_per_ps"] / unit.picosecond,
                                platform, seed)
    for _ in range(int(math.ceil(config["replica_equilibration_ps"] / config["swap_interval_ps"]))):
        sampler.run_cycle()
    sampler.reset_statistics()
    setup_s = time.perf_counter() - setup_start

    frames, wall = [], []
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < budget:
        sampler.run_cycle()
        frames.append(sampler.positions(0).value_in_unit(unit.nanometer))
        elapsed = time.perf_counter() - start
        wall.append(elapsed)
        if progress is not None:
            progress(elapsed)
    elapsed = time.perf_counter() - start

    wall = np.asarray(wall, dtype=float)
    phi, psi = torsions_from_positions(np.asarray(frames), topology)
    phi, psi = phi[:, 0], psi[:, 0]
    cycles = len(wall)
    md_steps = cycles * sampler.steps_per_swap * sampler.num_replicas
    stats = {
        "samples": int(cycles),
        "md_steps": int(md_steps),
        "simulated_ns": md_steps * config["timestep_fs"] * 1e-6,
        "sampled_ns": cycles * config["swap_interval_ps"] * 1e-3,
        "ps_per_s": cycles * config["swap_interval_ps"] / elapsed,
        "md_steps_per_s": md_steps / elapsed,
        "swap_acceptance": sampler.swap_acceptance.tolist(),
        "swap_attempts": sampler.swap_attempts.tolist(),
        "platform": platform.getName(),
    }
    return {
        "method": "replica-exchange",
        "wall_s": wall,
        "phi": phi,
        "psi": psi,
        "elapsed_s": float(elapsed),
        "setup_s": float(setup_s),
        "sample_interval_ps": float(config["swap_interval_ps"]),
        "estimates": _sample_estimates(wall, phi, psi, budget, config["num_checkpoints"]),
        "population_source": "samples",
        "seed": int(seed),
        "budget_s": budget,
        "settings": config,
        "stats": stats,
    }


def dipeptide_torsion_atoms(topology):
    """Atom indices of alanine dipeptide's phi and psi (as ``openmm_timewarp.analysis`` defines them).

    Parameters
    ----------
    topology : openmm.app.Topology

    Returns
    -------
    phi, psi : tuple of int
        Four atom indices each: C(ACE)-N-CA-C and N-CA-C-N(NME).
    """
    import mdtraj

    md_topology = mdtraj.Topology.from_openmm(topology)
    trajectory = mdtraj.Trajectory(np.zeros((1, md_topology.n_atoms, 3), dtype=np.float32), md_topology)
    phi_atoms, _ = mdtraj.compute_phi(trajectory)
    psi_atoms, _ = mdtraj.compute_psi(trajectory)
    if len(phi_atoms) != 1 or len(psi_atoms) != 1:
        raise ValueError(f"expected one phi and one psi, found {len(phi_atoms)} and {len(psi_atoms)}")
    return tuple(int(i) for i in phi_atoms[0]), tuple(int(i) for i in psi_atoms[0])


def torsion_variable(atoms):
    """A ``CustomTorsionForce`` whose energy is one torsion angle (radians, [-pi, pi]).

    Parameters
    ----------
    atoms : sequence of 4 int

    Returns
    -------
    openmm.CustomTorsionForce
    """
    import openmm

    force = openmm.CustomTorsionForce("theta")
    force.addTorsion(*[int(i) for i in atoms], [])
    return force


def periodic_grid_degrees(grid_points):
    """Angles (degrees) of the distinct points of a periodic Metadynamics grid on [-180, 180].

    ``openmm.app.Metadynamics`` tabulates a periodic variable at ``grid_points`` points spaced
    evenly from the minimum to the maximum inclusive, the last a copy of the first; the distinct ones
    are -180 + i * 360 / (grid_points - 1).

    Parameters
    ----------
    grid_points : int

    Returns
    -------
    numpy.ndarray, shape (grid_points - 1,)
    """
    cells = int(grid_points) - 1
    if cells < 1:
        raise ValueError(f"a periodic grid needs at least 2 points, got {grid_points}")
    return -180.0 + 360.0 * np.arange(cells) / cells


def state_cell_fractions(phi_grid, psi_grid, subdivisions=8, states=None):
    """Fraction of each grid cell in each state, for integrating a free-energy surface over states.

    Cell (i, j) is centred on (phi_grid[i], psi_grid[j]) with the grid spacing as its width (the
    grids are evenly spaced and periodic); the fractions are estimated on ``subdivisions`` x
    ``subdivisions`` evenly placed sub-points with ``openmm_timewarp.analysis.state_indicators``, so
    the state definitions are exactly those of the analysis.

    Parameters
    ----------
    phi_grid, psi_grid : array_like
        Degrees, evenly spaced, covering 360 degrees.
    subdivisions : int
    states : sequence of str, optional
        Default ``openmm_timewarp.analysis.REGION_NAMES``.

    Returns
    -------
    dict
        State -> numpy.ndarray (len(phi_grid), len(psi_grid)) of fractions in [0, 1].
    """
    from ..analysis import REGION_NAMES, state_indicators
    from ..analysis.torsions import wrap_degrees

    states = REGION_NAMES if states is None else tuple(states)
    m = int(subdivisions)
    offsets = (np.arange(m) + 0.5) / m - 0.5
    phi_grid, psi_grid = np.asarray(phi_grid, float), np.asarray(psi_grid, float)
    phi = wrap_degrees(phi_grid[:, None] + offsets[None, :] * 360.0 / len(phi_grid))  # (n_phi, m)
    psi = wrap_degrees(psi_grid[:, None] + offsets[None, :] * 360.0 / len(psi_grid))  # (n_psi, m)
    shape = (len(phi_grid), m, len(psi_grid), m)
    phi_all = np.broadcast_to(phi[:, :, None, None], shape)
    psi_all = np.broadcast_to(psi[None, None, :, :], shape)
    indicators = state_indicators(phi_all, psi_all)
    return {s: indicators[s].mean(axis=(1, 3)) for s in states}


def populations_from_free_energy(free_energy, kT, fractions):
    """State populations from a free-energy surface on a grid: sums of exp(-F/kT) over each state.

    Parameters
    ----------
    free_energy : array_like, shape (n_phi, n_psi)
        F at the grid points (same energy unit as ``kT``), one value per cell of equal area.
    kT : float
    fractions : dict
        State -> (n_phi, n_psi) fraction of each cell in the state (:func:`state_cell_fractions`).

    Returns
    -------
    dict
        State -> population (float).
    """
    f = np.asarray(free_energy, dtype=float)
    boltzmann = np.exp(-(f - f.min()) / float(kT))
    total = boltzmann.sum()
    return {s: float((boltzmann * np.asarray(frac)).sum() / total) for s, frac in fractions.items()}


def free_energy_grid(metadynamics):
    """The free-energy estimate of a periodic two-variable ``openmm.app.Metadynamics``, variable order.

    ``getFreeEnergy`` indexes its array [second variable, first variable] and repeats the first grid
    point of each periodic axis at the end; this returns F[i, j] at (first variable's point i, second
    variable's point j) over the distinct points (:func:`periodic_grid_degrees`).

    Parameters
    ----------
    metadynamics : openmm.app.Metadynamics
        With two periodic variables.

    Returns
    -------
    numpy.ndarray, shape (n_0 - 1, n_1 - 1)
        kJ/mol.
    """
    from openmm import unit

    free = metadynamics.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
    if free.ndim != 2:
        raise ValueError(f"expected two collective variables, got {free.ndim}")
    return np.asarray(free)[:-1, :-1].T


def bias_offset(free_energy, kT, bias_factor):
    """The Tiwary-Parrinello offset c(t) of a well-tempered metadynamics bias.

    With the free-energy estimate F = -(gamma / (gamma - 1)) V on the grid,
    c = kT ln( sum exp(-F/kT) / sum exp(-F/(gamma kT)) ), and a sample taken with bias V(s, t) has
    weight exp((V(s, t) - c(t)) / kT).

    Parameters
    ----------
    free_energy : array_like
        F at the distinct grid points (same energy unit as ``kT``).
    kT : float
    bias_factor : float
        gamma > 1.

    Returns
    -------
    float
        c(t), in the energy unit of ``kT``.
    """
    from scipy.special import logsumexp

    f = np.asarray(free_energy, dtype=float).reshape(-1) / float(kT)
    return float(kT) * float(logsumexp(-f) - logsumexp(-f / float(bias_factor)))


def run_metadynamics(settings=None, budget_s=60.0, seed=1, progress=None):
    """Sample alanine dipeptide by well-tempered metadynamics on phi and psi, for a wall-clock budget.

    Starts from the benchmark's common configuration of this seed (``methods.equilibrated_state``)
    with a zero bias; the clock starts with the dynamics, and a sample is recorded every
    ``record_interval_ps`` until the first sample after ``budget_s``.

    Parameters
    ----------
    settings : dict, optional
        Keys of ``METADYNAMICS_DEFAULTS`` override the defaults; other keys are ignored.
    budget_s : float or openmm.unit.Quantity
        Wall-clock seconds of sampling (setup before the clock is reported as ``setup_s``).
    seed : int
        At least 1.
    progress : callable, optional
        ``progress(elapsed_s)`` after each sample.

    Returns
    -------
    dict
        ``wall_s``, ``phi``, ``psi``, ``weights`` (reweighting factors, largest 1); ``elapsed_s``,
        ``setup_s``, ``sample_interval_ps``; ``estimates`` (populations from the free-energy surface at
        the checkpoints, and at the last sample within the budget: the reported ones,
        ``population_source`` = "estimates"); ``method``, ``seed``, ``budget_s``, ``settings`` (with
        ``width_rad`` and ``grid_points`` as used); ``stats``: ``samples``, ``md_steps``,
        ``simulated_ns``, ``md_steps_per_s``, ``gaussians``, ``max_bias_kJ_mol`` and
        ``final_populations`` (from the final free-energy surface).
    """
    import openmm
    from openmm import app, unit

    from ..analysis.torsions import wrap_degrees

    setup_start = time.perf_counter()
    budget = accuracy.as_seconds(budget_s)
    if not budget > 0:
        raise ValueError(f"budget_s must be positive, got {budget}")
    config = method_settings(METADYNAMICS_DEFAULTS, settings)
    sample_steps = int(round(config["record_interval_ps"] * 1000.0 / config["timestep_fs"]))
    if sample_steps < 1:
        raise ValueError("record_interval_ps must be at least one time step")
    width = math.radians(config["width_deg"])
    temperature = config["temperature_K"] * unit.kelvin
    kT = _GAS_CONSTANT * config["temperature_K"]

    topology, system, platform, positions = _common_start(config, seed)
    variables = [app.BiasVariable(torsion_variable(atoms), -math.pi, math.pi, width, periodic=True,
                                  gridWidth=config["grid_points"])
                 for atoms in dipeptide_torsion_atoms(topology)]
    config.update(width_rad=width, grid_points=int(variables[0].gridWidth))
    meta = app.Metadynamics(system, variables, temperature, config["bias_factor"],
                            config["height_kJ_mol"] * unit.kilojoule_per_mole, int(config["frequency_steps"]))
    bias_group = system.getForce(system.getNumForces() - 1).getForceGroup()  # the bias Metadynamics added
    integrator = openmm.LangevinMiddleIntegrator(temperature, config["friction_per_ps"] / unit.picosecond,
                                                 config["timestep_fs"] * unit.femtosecond)
    integrator.setRandomNumberSeed(_integrator_seed(seed, 0))
    simulation = app.Simulation(topology, system, integrator, platform)
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(temperature, _integrator_seed(seed, 0))
    grid = periodic_grid_degrees(config["grid_points"])
    fractions = state_cell_fractions(grid, grid, config["fes_subdivisions"])
    checkpoints = accuracy.checkpoint_times(budget, config["num_checkpoints"])
    setup_s = time.perf_counter() - setup_start

    wall, phi, psi, log_weights, estimates = [], [], [], [], []
    next_checkpoint = 0
    previous = None  # (wall_s, free-energy grid) of the previous sample
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < budget:
        meta.step(simulation, sample_steps)
        angles = np.degrees(np.asarray(meta.getCollectiveVariables(simulation), dtype=float))
        bias = simulation.context.getState(getEnergy=True, groups={bias_group}).getPotentialEnergy()
        free = free_energy_grid(meta)
        elapsed = time.perf_counter() - start
        if elapsed >= budget and previous is not None and (not estimates or estimates[-1][0] < previous[0]):
            # the surface in effect at the end of the budget
            estimates.append((previous[0], populations_from_free_energy(previous[1], kT, fractions)))
        wall.append(elapsed)
        phi.append(angles[0])
        psi.append(angles[1])
        offset = bias_offset(free, kT, config["bias_factor"])
        log_weights.append((bias.value_in_unit(unit.kilojoule_per_mole) - offset) / kT)
        if next_checkpoint < len(checkpoints) and elapsed >= checkpoints[next_checkpoint]:
            estimates.append((elapsed, populations_from_free_energy(free, kT, fractions)))
            while next_checkpoint < len(checkpoints) and checkpoints[next_checkpoint] <= elapsed:
                next_checkpoint += 1
        previous = (elapsed, free)
        if progress is not None:
            progress(elapsed)
    elapsed = time.perf_counter() - start

    log_weights = np.asarray(log_weights, dtype=float)
    final = free_energy_grid(meta)
    md_steps = int(simulation.currentStep)
    stats = {
        "samples": len(wall),
        "md_steps": md_steps,
        "simulated_ns": md_steps * config["timestep_fs"] * 1e-6,
        "md_steps_per_s": md_steps / elapsed,
        "gaussians": md_steps // int(config["frequency_steps"]),
        "max_bias_kJ_mol": float((-final * (config["bias_factor"] - 1.0) / config["bias_factor"]).max()),
        "final_populations": populations_from_free_energy(final, kT, fractions),
        "platform": platform.getName(),
    }
    return {
        "method": "metadynamics",
        "wall_s": np.asarray(wall, dtype=float),
        "phi": wrap_degrees(phi),
        "psi": wrap_degrees(psi),
        "weights": np.exp(log_weights - log_weights.max()),
        "elapsed_s": float(elapsed),
        "setup_s": float(setup_s),
        "sample_interval_ps": sample_steps * config["timestep_fs"] / 1000.0,
        "estimates": estimates,
        "population_source": "estimates",
        "seed": int(seed),
        "budget_s": budget,
        "settings": config,
        "stats": stats,
    }


# The benchmark's registry entries: name -> driver(settings, budget_s, seed, progress=None) -> dict.
PEER_METHODS = {
    "replica-exchange": run_replica_exchange,
    "metadynamics": run_metadynamics,
}

PEER_DESCRIPTIONS = {
    "replica-exchange": "temperature replica exchange, 8 replicas 310-600 K, swaps every 0.5 ps (Reference)",
    "metadynamics": "well-tempered metadynamics on phi and psi (bias factor 6, 1.2 kJ/mol, 20 deg, every 0.5 ps)",
}


def register_peer_methods():
    """Add the peer methods to the benchmark registry (``openmm-timewarp benchmark --methods ...``).

    Both are Boltzmann samplers at ``temperature_K`` (metadynamics through its weights and its
    free-energy estimate), neither is an MD baseline. Called when this module is imported, which
    :func:`openmm_timewarp.benchmark.methods.list_methods` and ``get_method`` do; calling it again
    replaces the entries.

    Returns
    -------
    list of openmm_timewarp.benchmark.methods.Method
    """
    from .methods import register_method

    return [register_method(name, driver, description=PEER_DESCRIPTIONS[name], boltzmann=True, baseline=False,
                            replace=True)
            for name, driver in PEER_METHODS.items()]


register_peer_methods()
