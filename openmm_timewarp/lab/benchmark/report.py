"""Text tables of a benchmark, built from its JSON (``benchmark.json``) alone."""

from typing import Any, Dict, List, Sequence


def fmt(value, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "-"
    if isinstance(value, float) and value in (float("inf"), -float("inf")):
        return "inf"
    return format(value, spec)


def table(header: Sequence[str], rows: List[Sequence[str]]) -> str:
    """A plain-text table with columns as wide as their widest cell."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def methods_table(result: Dict[str, Any]) -> str:
    """One row per method: what a unit of work is, samples, acceptance, set-up time, simulated time."""
    rows = []
    for name, s in result["methods"].items():
        stats = s["statistics"]
        acceptance = fmt(stats.get("acceptance_rate"), ".3f")
        components = stats.get("component_acceptance")
        if components:
            acceptance += " (" + ", ".join(f"{k} {fmt(v, '.3f')}" for k, v in components.items()) + ")"
        rows.append((name, s["unit"], str(s["samples"]), acceptance, fmt(max(s["setup_s"]), ".2f"),
                     fmt(stats.get("simulated_ns"), ".3g")))
    return table(("method", "one sample every", "samples", "acceptance", "set-up s (max)", "simulated ns"), rows)


def ess_table(result: Dict[str, Any]) -> str:
    """Block and windowed ESS per second of every checked state, speed-ups over the best MD baseline,
    and the recording check (block ESS of every second sample / of all)."""
    rows = []
    for name, s in result["methods"].items():
        if not s["boltzmann"]:
            continue
        speed = result["comparisons"].get(name, {}).get("speed_up", {})
        for state in s["checked_states"] or list(s["states"])[:3]:
            f = s["states"][state]
            block = speed.get(state, {}).get("ess_block_per_s", {})
            rows.append((name, state, fmt(f["ess_block_per_s"]), fmt(f.get("ess_window_per_s")),
                         block.get("text", "-"), fmt(f.get("recording_ratio"), ".2f")))
    return table(("method", "state", "ESS/s block", "ESS/s window", "speed-up (block)", "recording"), rows)


def populations_table(result: Dict[str, Any]) -> str:
    """Populations with block errors against the reference: |ln(p / p_ref)| and z."""
    reference = (result.get("reference") or {}).get("states", {})
    rows = []
    for state, ref in reference.items():
        rows.append(("reference", state, f"{ref['population']:.4f} +- {ref['stderr']:.4f}", "", ""))
    for name, s in result["methods"].items():
        if not s["boltzmann"]:
            continue
        for state in reference:
            f = s["states"].get(state)
            if f is None:
                continue
            rows.append((name, state, f"{f['population']:.4f} +- {fmt(f['stderr'], '.4f')}",
                         fmt(f.get("error_kT"), ".2f"), fmt(f.get("z"), ".1f")))
    return table(("method", "state", "population", "|ln p/p_ref| kT", "z"), rows)


def visits_table(result: Dict[str, Any]) -> str:
    """Median first-visit time of every state, and the replicas that never visited it."""
    rows = []
    for name, s in result["methods"].items():
        for state, visit in s["first_visit_s"].items():
            missed = s["missed"].get(state)
            rows.append((name, state, visit["text"], ", ".join(map(str, missed)) if missed else "none"))
    return table(("method", "state", "first visit s (median)", "replicas that missed it"), rows)


def accuracy_table(result: Dict[str, Any]) -> str:
    """Median time to 0.3 kT on every checked state, and its ratio to each peer's."""
    rows = []
    for name, s in result["methods"].items():
        if "accuracy" not in s:
            continue
        against = result["comparisons"].get(name, {}).get("vs_peers", {})
        ratios = "; ".join(f"{peer} {v['time_to_accuracy']['text']}" for peer, v in against.items()
                           if "time_to_accuracy" in v)
        rows.append((name, s["accuracy"]["time_to_accuracy_s"]["text"], ratios or "-"))
    return table(("method", "time to 0.3 kT (s, median)", "ratio to"), rows)


def full_report(result: Dict[str, Any]) -> str:
    """Every table, with headings."""
    settings = result["settings"]
    head = (f"{result['title']}: {settings['repeats']} replicas x {settings['budget_s']:g} s per method, "
            f"{settings['cores']} at a time; {result['molecule']['atoms']} atoms, {result['molecule']['preset']}, "
            f"{result['molecule']['temperature_K']:g} K")
    parts = [head, "", methods_table(result), "", "Effective samples per second (per core)", ess_table(result), "",
             "Populations", populations_table(result), "", "First visits", visits_table(result), "",
             "Time to accuracy", accuracy_table(result)]
    return "\n".join(parts)
