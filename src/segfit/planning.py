"""``segfit plan`` and the planning step of ``segfit train``: fingerprint the data and this machine
(:mod:`segfit.fingerprint`), then plan by the rules of :mod:`segfit.planner`; show or write the plan."""

from __future__ import annotations

import os
from pathlib import Path

from segfit.budget import DEFAULT_BUDGET, parse_duration
from segfit.planner import make_plan
from segfit.plans import Plan


def plan_for(data, budget_s: float | None, user: dict, calibrate_steps: int = 3) -> tuple[Plan, dict]:
    """Fingerprint ``data`` and this machine, then plan: the :class:`Plan` and ``{"data", "machine"}``."""
    from segfit.fingerprint import fingerprint_data, fingerprint_machine

    fp = fingerprint_data(data, user.get("images"), user.get("masks"), user.get("mask_suffix") or "_bin")
    machine = fingerprint_machine()
    planned = make_plan(fp, machine, budget_s, user, calibrate_steps)
    if fp["sampled"] < fp["images"]:
        planned.notes.append(f"fingerprint from a sample of {fp['sampled']} of the {fp['images']} images")
    return planned, {"data": fp, "machine": machine}


def plan(data, time: str | float | None = None, out=None, verbose: bool = True, **options) -> Plan:
    """Fingerprint a data set and this machine and plan training, without training (``segfit plan``).

    Args:
        data: data set folder.
        time: the time budget (``90s``, ``10m``, ``1h`` or seconds; default 10m unless ``epochs`` is given).
        out: write the plan and the fingerprint to this JSON file (a folder: its ``plan.json``).
        verbose: print the plan as a table, one reason per choice.
        **options: training options the user fixes (they win over the plan), as for :func:`segfit.train`.

    Returns:
        The :class:`Plan`.
    """
    from segfit.io import write_json

    options = {k: v for k, v in options.items() if v is not None}
    budget = parse_duration(time) if time is not None else (None if "epochs" in options else DEFAULT_BUDGET)
    planned, fingerprint = plan_for(data, budget, options)
    if verbose:
        d, m = fingerprint["data"], fingerprint["machine"]
        print(f"Data: {d['layout']}; {d['mask_kind']} masks, {d['num_classes']} classes, median size "
              f"{d['height']['median']:.0f}x{d['width']['median']:.0f}")
        print(f"Machine: {m['cores']} cores, bf16 {'yes' if m['cpu_bf16'] else 'no'}, GPU "
              f"{m['gpu']['name'] if m['gpu'] else 'none'}" + (f"; budget {budget:.0f} s" if budget else ""))
        print("\n".join(planned.lines()))
        if budget and "epochs" not in planned.entries:
            print("epochs: sized when training starts, from the calibration above and the time the data pass takes")
    if out is not None:
        from segfit.rundir import new_file

        if str(out).endswith(("/", os.sep)) or Path(out).is_dir():  # a folder: the plan goes in it as plan.json
            Path(out).mkdir(parents=True, exist_ok=True)
            out = Path(out) / "plan.json"
        out = new_file(out, print if verbose else lambda _: None)
        write_json(out, {"plan": planned.to_dict(), "fingerprint": fingerprint})
        if verbose:
            print(f"Wrote {out}")
    return planned
