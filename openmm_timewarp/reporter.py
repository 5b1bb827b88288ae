"""TimewarpReporter: the integrator's move statistics as CSV, for ``Simulation.reporters``."""

import os

from .integrator import TimewarpIntegrator


class TimewarpReporter:
    """Writes, every ``reportInterval`` steps, what the TimewarpIntegrator did since the last report.

    Columns: step, moves, MH steps (proposals), accepted, acceptance rate (of this interval),
    discarded proposals, chirality rejections, mean energy change of accepted moves (kJ/mol),
    and seconds spent in the flow, in energy evaluations and in MD (this interval). The
    integrator's cumulative statistics stay readable at any time with ``getStatistics()``.

    Parameters
    ----------
    file : str or file object
    reportInterval : int
    append : bool
        Append to an existing file instead of overwriting it (no header then).
    """

    COLUMNS = ("step", "moves", "proposals", "accepted", "acceptance_rate", "discarded", "chirality_rejections",
               "mean_accepted_energy_change_kJ_mol", "flow_s", "energy_s", "md_s")

    def __init__(self, file, reportInterval, append=False):
        self._reportInterval = int(reportInterval)
        self._own = isinstance(file, (str, os.PathLike))
        self._out = open(file, "a" if append else "w") if self._own else file
        self._last = None
        if not append:
            print(",".join(self.COLUMNS), file=self._out, flush=True)

    def describeNextReport(self, simulation):
        steps = self._reportInterval - simulation.currentStep % self._reportInterval
        return {"steps": steps, "periodic": None, "include": []}

    def report(self, simulation, state):
        integrator = simulation.integrator
        if not isinstance(integrator, TimewarpIntegrator):
            raise TypeError("TimewarpReporter needs a Simulation whose integrator is a TimewarpIntegrator.")
        now = integrator.getMoveStatistics()
        delta = now if self._last is None else now - self._last  # after a reset: since the reset
        self._last = now
        accepted = delta.accepted
        row = (simulation.currentStep, delta.moves, delta.proposals, accepted,
               f"{accepted / delta.proposals:.6g}" if delta.proposals else "nan", delta.discarded,
               delta.chirality_rejections,
               f"{delta.accepted_energy_change / accepted:.6g}" if accepted else "nan",
               f"{delta.flow_time:.6g}", f"{delta.energy_time:.6g}", f"{delta.md_time:.6g}")
        print(",".join(str(value) for value in row), file=self._out, flush=True)

    def __del__(self):
        if getattr(self, "_own", False):
            self._out.close()
