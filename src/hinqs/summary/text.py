"""The answer in words: one line per system, what a chemist reads first at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hinqs.errors import InputError
from hinqs.summary.aggregate import MHA, read_summary


def _mha(value: float, sign: bool = True) -> str:
    """mHa with three decimals, or two significant digits below 0.01 mHa (so 3e-04 is not +0.000)."""
    plus = "+" if sign else ""
    return f"{value:{plus}.3f}" if abs(value) >= 0.01 or value == 0 else f"{value:{plus}.1e}"


def result_line(summary: dict[str, Any]) -> str:
    """The answer of one system in one line: what a chemist reads first at the end of a run."""
    best = summary["best_energy"]
    ref = summary.get("best_reference") or {}
    if best is None:
        return f"{summary['system']}: no energy (no iteration finished)"
    versus = (
        f"{_mha(ref['error_mha'])} mHa vs {ref['name']} ({ref['energy']:.8f})"
        if ref.get("error_mha") is not None
        else "no reference energy"
    )
    records = summary["per_iteration"]
    best_record = next((r for r in records if r["iteration"] == summary.get("best_iteration")), records[-1])
    size = best_record.get("subspace_size")
    dimension = best_record.get("subspace_dimension")
    fci = summary.get("fci_space")
    share = f" ({100.0 * dimension / fci:.3g} % of FCI)" if dimension and fci else ""
    seconds = sum(v for v in (summary.get("seconds_per_stage") or {}).values() if v)
    stop = summary.get("stop_reason") or "not stopped"
    diagonalised = f"{dimension:,} determinants diagonalised{share}" if dimension else "no batch solved"
    pt2 = summary.get("pt2") or {}
    if pt2.get("error_mha") is not None:
        bar = pt2.get("e_pt2_error")
        half = pt2.get("e_pt2_ci95")
        if pt2.get("complete") or bar is not None:
            sampled = f" +- {_mha(half * MHA, sign=False)} (95 %)" if half else ""
            sampled = sampled or (f" +- {_mha(bar * MHA, sign=False)} (s.e.)" if bar else "")
            versus += f"; E+PT2 {_mha(pt2['error_mha'])}{sampled} mHa"
        else:
            versus += f"; E+PT2 (screened) {_mha(pt2['error_mha'])} mHa"
        fit = pt2.get("extrapolated") or {}
        if fit.get("error_mha") is not None:
            bar = fit.get("uncertainty", fit.get("spread"))
            spread = f" +- {_mha(bar * MHA, sign=False)} ({fit.get('basis', 'fit scatter')})" if bar is not None else ""
            versus += f", extrapolated {_mha(fit['error_mha'])}{spread} mHa"
    return (
        f"{summary['system']}: E = {best:.10f} Ha, {versus}, {diagonalised}, subspace of {size or 0:,}, "
        f"{summary['iterations']} iterations, stop: {stop}, {seconds:.0f} s in steps"
    )


def result_lines(results: Any, systems: list[str] | None = None) -> list[str]:
    """:func:`result_line` of every system of a results folder that has a summary.json."""
    from hinqs.io.layout import RunLayout

    layout = results if isinstance(results, RunLayout) else RunLayout.at(results)
    if systems is None:
        root = Path(layout.root)
        systems = sorted(p.parent.name for p in root.glob("*/summary.json"))
    lines = []
    for name in systems:
        path = layout.system(name).summary
        if path.exists():
            lines.append(_result_line_of(path))
    return lines


def _result_line_of(path: Path) -> str:
    """The result line of a summary.json; a file that is not one is a one-line error."""
    summary = read_summary(path)
    try:
        return result_line(summary)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise InputError(f"{path}: not a hinqs summary ({type(exc).__name__}: {exc})") from None
