"""Text tables of a benchmark result (the dict :func:`.runner.run_benchmark` returns)."""

import math

from ..analysis import REGION_NAMES

TORSION_OBSERVABLES = ("sin_phi", "cos_phi", "sin_psi", "cos_psi")


def fmt(value, spec=".3g", missing="-"):
    """A number formatted with ``spec``; ``missing`` for None, strings as they are, "nan"/"inf" as such."""
    if value is None:
        return missing
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def text_table(header, rows, first_width=24, width=16, notes=None):
    """Fixed-width table: a left-aligned first column, right-aligned others, optional free-text last column.

    Parameters
    ----------
    header : sequence of str
        Column titles (plus the notes title last, if ``notes`` is given).
    rows : sequence of sequence of str
        Cells.
    first_width, width : int
        Width of the first and of the other columns (cells are separated by at least one space).
    notes : sequence of str, optional
        A left-aligned text per row, after the other columns.

    Returns
    -------
    str
    """
    def line(cells, note=None):
        text = f"{cells[0]:<{first_width - 1}} " + "".join(f" {c:>{width - 1}}" for c in cells[1:])
        return text + ("" if note is None else f"  {note}")

    columns = header[:-1] if notes is not None else header
    lines = [line(columns, header[-1] if notes is not None else None)]
    for k, row in enumerate(rows):
        lines.append(line(row, notes[k] if notes is not None else None))
    return "\n".join(lines)


def observable_rows(result, include_blocks):
    """``(observable, estimate)`` rows: every observable with ``"ess"``, indicators also with ``"ess_blocks"``."""
    names = []
    for summary in result["methods"].values():
        names += [n for n in summary["ess"] if n not in names]
    rows = []
    for name in names:
        rows.append((name, "ess"))
        if include_blocks and name.startswith("indicator_"):
            rows.append((name, "ess_blocks"))
    return rows


def observable_label(name, key):
    """Short label: ``indicator_alphaR`` -> ``1[alphaR]``, plus " blocks" for the block estimate."""
    label = name.replace("indicator_", "1[") + ("]" if name.startswith("indicator_") else "")
    return label + (" blocks" if key == "ess_blocks" else "")


def methods_table(result):
    """Replicas, wall time, samples, acceptance, simulated time, JSD and missed states per method.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    header = ("method", "replicas", "wall s", "samples", "acceptance", "MD ns", "JSD", "missed states")
    rows, notes = [], []
    for name, m in result["methods"].items():
        rows.append((name, str(m["chains"]), fmt(m["wall_s"], ".1f"), str(m["samples"]),
                     fmt(m["acceptance_rate"], ".3f"), fmt(m["totals"].get("simulated_ns"), ".3g"),
                     fmt(m["jsd"], ".3f")))
        notes.append(", ".join(m["missed_states"]) or "none")
    return text_table(header, rows, 18, 11, notes)


def ess_table(result, include_blocks=True):
    """ESS per wall-clock second of every observable (rows) and Boltzmann-sampling method (columns).

    Parameters
    ----------
    result : dict
    include_blocks : bool
        Add a row with the block estimate under each state indicator.

    Returns
    -------
    str
    """
    methods = [m for m, s in result["methods"].items() if s.get("boltzmann", True)]
    rows, marked = [], False
    for name, key in observable_rows(result, include_blocks):
        cells = []
        for m in methods:
            entry = result["methods"][m]["ess"].get(name, {})
            cell = fmt(entry.get(f"{key}_per_s"), ".3g")
            if entry and not entry.get("meaningful", True):
                cell, marked = cell + "*", True
            cells.append(cell)
        rows.append((observable_label(name, key), *cells))
    text = "ESS per wall-clock second (Boltzmann samplers)\n" + text_table(("observable", *methods), rows)
    if marked:
        text += ("\n* not meaningful: the method never visited a state this observable depends on "
                 "(see missed states)")
    return text


def speed_up_table(result, include_blocks=True):
    """Speed-up over the best MD baseline on every observable, with the baseline used.

    Parameters
    ----------
    result : dict
    include_blocks : bool
        Add the block-estimate speed-up under each state indicator.

    Returns
    -------
    str
        Empty if no method has speed-ups (no baseline, or only baselines run).
    """
    methods = list(result["speed_ups"])
    if not methods:
        return ""
    rows, notes = [], []
    for name, key in observable_rows(result, include_blocks):
        cells, bases = [], set()
        for m in methods:
            entry = result["speed_ups"][m][key].get(name)
            cells.append("-" if entry is None else entry["text"])
            if entry is not None:
                bases.add(entry["baseline"])
        rows.append((observable_label(name, key), *cells))
        notes.append("/".join(sorted(bases)))
    text = text_table(("observable", *methods, "best MD"), rows, notes=notes)
    return ("Speed-up = ESS/s over the best MD baseline (0: the method missed a state the reference visits; "
            "> X: the baseline never visited a state, its ESS bounded by 1)\n" + text)


def populations_table(result, names=REGION_NAMES):
    """State populations of every method with block standard errors, beside the reference.

    Parameters
    ----------
    result : dict
    names : sequence of str

    Returns
    -------
    str
    """
    methods = list(result["methods"])
    reference = result["reference"]
    rows = []
    for state in names:
        ref = f"{reference['populations'][state]:.4f}±{reference['populations_stderr'][state]:.4f}"
        cells = []
        for m in methods:
            summary = result["methods"][m]
            p = summary["populations"].get(state)
            se = summary["populations_stderr"].get(state)
            error = "" if se is None or not math.isfinite(se) else f"±{se:.4f}"
            cells.append("-" if p is None else f"{p:.4f}{error}")
        rows.append((state, ref, *cells))
    return "State populations\n" + text_table(("state", "reference", *methods), rows, 16, 18)


def exploration_table(result, names=REGION_NAMES):
    """Median wall-clock time to the first visit of each state, and the ratio to the best MD baseline.

    Parameters
    ----------
    result : dict
    names : sequence of str

    Returns
    -------
    str
    """
    exploration = result["exploration"]
    methods = list(exploration["median"])
    rows = []
    for state in names:
        rows.append((state, *[exploration["median"][m][state]["text"] for m in methods]))
    text = "Median wall-clock time to first visit (over replicas; > T: not reached)\n"
    text += text_table(("state", *methods), rows, 16, 18)
    if exploration["speed_ups"]:
        others = list(exploration["speed_ups"])
        rows = [(state, *[exploration["speed_ups"][m][state]["text"] for m in others]) for state in names]
        notes = [exploration["best_baseline"].get(state, "-") for state in names]
        text += "\n\nTime-to-first-visit speed-up over the best MD baseline\n"
        text += text_table(("state", *others, "best MD"), rows, 16, 18, notes)
    return text


def accuracy_table(result):
    """Time to the accuracy threshold, error at the end of the budget and Timewarp's ratio, per method.

    Parameters
    ----------
    result : dict
        With ``accuracy`` (:func:`.summary.accuracy_summary`).

    Returns
    -------
    str
        Empty without an ``accuracy`` section.
    """
    accuracy = result.get("accuracy")
    if not accuracy or not accuracy["methods"]:
        return ""
    threshold = accuracy["threshold_kT"]
    timewarp = accuracy.get("timewarp_method")
    ratio_title = f"vs {timewarp}" if timewarp else "ratio"
    header = ("method", "source", "repeats", f"time to {threshold:g} kT", "error at end", "range at end",
              ratio_title, "never sampled (repeats)")
    rows, notes = [], []
    for name, entry in accuracy["methods"].items():
        never = entry.get("repeats_never_visiting", {})
        notes.append(", ".join(f"{s} {n}/{entry['repeats']}" for s, n in never.items() if n) or "-")
        finals = [float(v) for v in entry["final_errors_kT"]]
        spread = f"{fmt(min(finals), '.2f')}-{fmt(max(finals), '.2f')}" if finals else "-"
        if name == timewarp:
            ratio = "(itself)"
        elif name in accuracy["ratios"]:
            ratio = accuracy["ratios"][name]["text"]
        else:
            ratio = accuracy.get("not_compared", {}).get(name, "-")
        source = entry["population_source"]
        source = source if isinstance(source, str) else "/".join(source)
        rows.append((name, source, str(entry["repeats"]), entry["time_to_threshold"]["text"],
                     fmt(float(entry["final_error_kT"]), ".3f"), spread, ratio))
    states = ", ".join(accuracy["states"])
    text = (f"Time to {threshold:g} kT: worst of {states} |ln(p / p_ref)|, median over repeats "
            f"(> T: not below {threshold:g} kT at the end of the budget; inf: a state not visited)\n")
    text += text_table(header, rows, 18, 14, notes)
    if timewarp:
        text += (f"\nratio = peer's time / {timewarp}'s (> 1: {timewarp} faster; > X, < X: bounds from a censored "
                 "time; undefined: neither got there)")
    return text


def format_report(result):
    """All tables, separated by blank lines.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    settings = result["settings"]
    head = (f"{result['system']}\n{settings['replicas_per_method']} replicas per method on {settings['cores']} "
            f"core(s), {settings['budget_s']:g} s of sampling each")
    parts = [head, methods_table(result), ess_table(result), speed_up_table(result), populations_table(result),
             exploration_table(result), accuracy_table(result)]
    return "\n\n".join(p for p in parts if p)
