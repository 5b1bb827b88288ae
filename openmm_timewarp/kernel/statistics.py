"""Move statistics: mutable counters inside the kernel, frozen snapshots outside it."""

from dataclasses import dataclass, fields
from typing import Mapping, Sequence, Tuple

_COUNTS = ("moves", "proposals", "accepted", "discarded", "chirality_rejections")
_TIMES = ("accepted_energy_change", "flow_time", "energy_time", "md_time")


@dataclass(frozen=True)
class MoveStatistics:
    """A snapshot of the move counters and timers (times in seconds, energy change in kJ/mol).

    ``generation`` counts statistics resets: the difference of two snapshots of different
    generations is the newer snapshot itself (what happened since the reset).

    Attributes
    ----------
    moves, proposals, accepted, discarded, chirality_rejections : int
    accepted_energy_change, flow_time, energy_time, md_time : float
        ``md_time`` is the integrator's MD time (0 for moves without MD).
    component_proposals, component_accepted : tuple of (str, int)
        Per mixture component (empty for flows without components).
    generation : int
    """

    moves: int = 0
    proposals: int = 0
    accepted: int = 0
    discarded: int = 0
    chirality_rejections: int = 0
    accepted_energy_change: float = 0.0
    flow_time: float = 0.0
    energy_time: float = 0.0
    md_time: float = 0.0
    component_proposals: Tuple[Tuple[str, int], ...] = ()
    component_accepted: Tuple[Tuple[str, int], ...] = ()
    generation: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Accepted / MH steps spent (0.0 before any step)."""
        return self.accepted / self.proposals if self.proposals else 0.0

    def __sub__(self, other: "MoveStatistics") -> "MoveStatistics":
        """What happened between ``other`` and this snapshot (this one, if the statistics were reset since)."""
        if not isinstance(other, MoveStatistics):
            return NotImplemented
        if other.generation != self.generation:
            return self
        values = {name: getattr(self, name) - getattr(other, name) for name in _COUNTS + _TIMES}
        for name in ("component_proposals", "component_accepted"):
            before = dict(getattr(other, name))
            values[name] = tuple((key, count - before.get(key, 0)) for key, count in getattr(self, name))
        return MoveStatistics(**values, generation=self.generation)

    def as_dict(self) -> dict:
        """The statistics as the dict users know (with ``acceptance_rate``; components only for mixtures)."""
        stats = {name: getattr(self, name) for name in _COUNTS}
        stats["acceptance_rate"] = self.acceptance_rate
        stats.update((name, getattr(self, name)) for name in _TIMES)
        if self.component_proposals:
            stats["component_proposals"] = dict(self.component_proposals)
            stats["component_accepted"] = dict(self.component_accepted)
        return stats

    @classmethod
    def from_dict(cls, stats: Mapping, component_names: Sequence[str] = ()) -> "MoveStatistics":
        """Read the dict of :meth:`as_dict` (or of an older checkpoint: missing timers count as 0)."""
        values = {name: stats.get(name, 0) for name in _COUNTS}
        values.update((name, stats.get(name, 0.0)) for name in _TIMES)
        for name in ("component_proposals", "component_accepted"):
            counts = stats.get(name, {})
            values[name] = tuple((key, counts.get(key, 0)) for key in component_names)
        return cls(**values)


class MoveCounters:
    """The kernel's running counters; :meth:`snapshot` freezes them into a :class:`MoveStatistics`."""

    def __init__(self, component_names: Sequence[str] = ()):
        self.names = tuple(component_names)
        self.generation = 0
        self.load(MoveStatistics())

    def load(self, stats: MoveStatistics):
        """Set every counter from ``stats`` (the generation is kept)."""
        for field in fields(MoveStatistics):
            if field.name not in ("component_proposals", "component_accepted", "generation", "md_time"):
                setattr(self, field.name, getattr(stats, field.name))
        proposals, accepted = dict(stats.component_proposals), dict(stats.component_accepted)
        self.component_proposals = [proposals.get(name, 0) for name in self.names]
        self.component_accepted = [accepted.get(name, 0) for name in self.names]

    def reset(self):
        self.load(MoveStatistics())
        self.generation += 1

    def snapshot(self) -> MoveStatistics:
        values = {name: getattr(self, name) for name in _COUNTS + _TIMES if name != "md_time"}
        return MoveStatistics(**values, component_proposals=tuple(zip(self.names, self.component_proposals)),
                              component_accepted=tuple(zip(self.names, self.component_accepted)),
                              generation=self.generation)
