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
    """The answer of one system in one line: what a chemist reads first at the end of a run.

    It names its terms: which iteration gave the energy, what was diagonalised (the product
    space of a batch's alpha and beta strings, which holds every pairing of them and so more
    determinants than the subspace they came from), and why the loop stopped (the reason
    string status.json holds, whatever the stop rule calls it).
    """
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
    seconds = sum(v for v in (summary.get("seconds_per_stage") or {}).values() if v)
    stop = summary.get("stop_reason") or "not stopped"
    if summary.get("stop_detail"):
        stop += f" ({summary['stop_detail']})"
    which = f"(iteration {best_record['iteration']})"
    return (
        f"{summary['system']}: E = {best:.10f} Ha {which}, {versus}{_pt2_text(summary)}; "
        f"{_diagonalised_text(best_record, summary.get('fci_space'))}; "
        f"stop: {stop} after {summary['iterations']} iterations, {seconds:.0f} s in steps"
    )


def _diagonalised_text(record: dict[str, Any], fci: int | None) -> str:
    """What was diagonalised: the largest batch's product space, against FCI and the subspace."""
    dimension = record.get("subspace_dimension")
    size = record.get("subspace_size") or 0
    if not dimension:
        return f"no batch solved (subspace of {size:,} determinants)"
    shape = record.get("product_shape")
    strings = f"{shape[0]:,} x {shape[1]:,} strings = " if shape and len(shape) == 2 else ""
    share = f", {100.0 * dimension / fci:.3g} % of FCI's {fci:,}" if fci else ""
    batches = len(record.get("batch_dimensions") or [])
    which = f"the largest of {batches} batches' product spaces" if batches > 1 else "the product space"
    return (
        f"diagonalised: {which}, {strings}{dimension:,} determinants{share} "
        f"(every alpha-beta pairing of strings drawn from a subspace of {size:,})"
    )


def _pt2_text(summary: dict[str, Any]) -> str:
    """The PT2-corrected and extrapolated errors, with their error bars ('' without PT2)."""
    pt2 = summary.get("pt2") or {}
    if pt2.get("error_mha") is None:
        return ""
    bar = pt2.get("e_pt2_error")
    half = pt2.get("e_pt2_ci95")
    if pt2.get("complete") or bar is not None:
        sampled = f" +- {_mha(half * MHA, sign=False)} (95 %)" if half else ""
        sampled = sampled or (f" +- {_mha(bar * MHA, sign=False)} (s.e.)" if bar else "")
        text = f", E+PT2 {_mha(pt2['error_mha'])}{sampled} mHa"
    else:
        text = f", E+PT2 (screened) {_mha(pt2['error_mha'])} mHa"
    fit = pt2.get("extrapolated") or {}
    if fit.get("error_mha") is not None:
        bar = fit.get("uncertainty", fit.get("spread"))
        spread = f" +- {_mha(bar * MHA, sign=False)} ({fit.get('basis', 'fit scatter')})" if bar is not None else ""
        text += f", extrapolated {_mha(fit['error_mha'])}{spread} mHa"
    return text


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
