"""Figures: a system's convergence plot (with the E_var-vs-E_PT2 fit) and a scan's curve."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from hinqs.io.atomic import atomic_path
from hinqs.summary.aggregate import CHEMICAL_ACCURACY_MHA, MHA


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend (compute nodes have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write a figure atomically and free it."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    _pyplot().close(fig)


# Errors within this many mHa of the reference are drawn on a linear scale (symlog): an
# error of exactly zero (FCI reached) and a negative one (below a non-exact reference) show.
LINEAR_WITHIN_MHA = 1e-3
# The smallest range an axis of the extrapolation panel spans (mHa).
MIN_SPAN_MHA = 0.01


def plot_convergence(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the convergence figure (:func:`convergence_figure`) as a PNG."""
    _save_png(convergence_figure(summary), path)


def convergence_figure(summary: dict[str, Any]) -> Any:
    """Signed error against the best reference (FCI, else CCSD(T)) per iteration, in mHa.

    Signed on a symlog axis, because an energy below a selected-CI or CCSD(T) reference is
    news, not noise; legends sit below the panels so no line is covered; every axis and
    label is in mHa (the fit's too). With PT2, a second panel shows E_var against E_PT2 and
    the straight line read at E_PT2 = 0.
    """
    plt = _pyplot()
    ref = summary["best_reference"]["energy"]
    with_pt2 = [r for r in summary["per_iteration"] if r.get("e_pt2") is not None and r["energy"] is not None]
    if with_pt2:
        fig, (ax, ax_fit) = plt.subplots(1, 2, figsize=(11, 5.2))
        _plot_pt2_fit(ax_fit, summary, with_pt2)
    else:
        fig, ax = plt.subplots(figsize=(6, 5.2))
    iterations = [r["iteration"] for r in summary["per_iteration"] if r["energy"] is not None]
    energies = [r["energy"] for r in summary["per_iteration"] if r["energy"] is not None]
    if ref is not None:
        _plot_errors(ax, summary, iterations, energies, with_pt2)
    else:
        ax.plot(iterations, energies, "o-", label="HI-NQS-SQD energy")
        ax.set_ylabel("E (Ha)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("iteration")
    ax.set_title(f"{summary['system']}: {summary['norb']} orbitals, nelec {tuple(summary['nelec'])}")
    _legend_below(ax)
    fig.tight_layout()
    return fig


def _plot_errors(
    ax: Any, summary: dict[str, Any], iterations: list[int], energies: list[float], with_pt2: list
) -> None:
    """The left panel: each iteration's, the best-so-far and the PT2-corrected error, signed, in mHa."""
    refs = summary["references"]
    ref_name, ref = summary["best_reference"]["name"], summary["best_reference"]["energy"]
    errors = [(e - ref) * MHA for e in energies]
    best = [(min(energies[: i + 1]) - ref) * MHA for i in range(len(energies))]
    ax.axhspan(-CHEMICAL_ACCURACY_MHA, CHEMICAL_ACCURACY_MHA, color="0.9", label="chemical accuracy (+-1.6 mHa)")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.plot(iterations, errors, "o", color="C0", alpha=0.6, label="iteration's energy")
    ax.plot(iterations, best, "-", color="C0", label="best so far")
    if with_pt2:
        total = [(r["e_var_plus_pt2"] - ref) * MHA for r in with_pt2]
        ax.plot([r["iteration"] for r in with_pt2], total, "s-", color="C4", label="E + PT2")
    colours = iter(("C1", "C2", "C3"))
    for name, label in (("ccsd_t", "CCSD(T)"), ("ccsd", "CCSD"), ("hf", "HF")):
        if refs.get(name) is not None and label != ref_name and abs(refs[name] - ref) > 0:
            ax.axhline((refs[name] - ref) * MHA, ls=":", lw=1.2, color=next(colours), label=label)
    ax.set_yscale("symlog", linthresh=LINEAR_WITHIN_MHA)
    ax.set_ylabel(f"E - E({ref_name}) (mHa, linear within +-{LINEAR_WITHIN_MHA:g})")


def _legend_below(ax: Any) -> None:
    """The legend under the axes (outside them), so it covers no line."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)


def _plot_pt2_fit(ax: Any, summary: dict[str, Any], with_pt2: list[dict[str, Any]]) -> None:
    """E_var against E_PT2 per iteration and the linear fit read at E_PT2 = 0, both axes in mHa.

    E_var is drawn relative to the best reference (or to the fit's value without one), so
    the fit's label, its axis and its error bar all read in mHa.
    """
    x = np.array([r["e_pt2"] for r in with_pt2]) * MHA
    y_ha = np.array([r["energy"] for r in with_pt2])
    fit = (summary.get("pt2") or {}).get("extrapolated")
    reference = summary["best_reference"]
    if reference.get("energy") is not None:
        zero, zero_name = float(reference["energy"]), str(reference["name"])
    else:
        zero = float(fit["energy"]) if fit is not None else float(y_ha.min())
        zero_name = "fit at E_PT2 = 0" if fit is not None else "lowest E_var"
    y = (y_ha - zero) * MHA
    bars = [(r.get("e_pt2_error") or 0.0) * MHA for r in with_pt2]
    ax.errorbar(x, y, xerr=bars, fmt="o", color="C0", label="iterations (E_PT2 +- standard error)")
    if fit is not None:
        line = np.linspace(min(x.min(), 0.0), 0.0, 20)
        bar = fit.get("uncertainty", fit.get("spread"))
        spread = f" +- {bar * MHA:.3f}" if bar is not None else ""
        at_zero = (float(fit["energy"]) - zero) * MHA
        ax.plot(line, at_zero + fit["slope"] * line, "-", color="C1",
                label=f"fit at E_PT2 = 0: {at_zero:+.3f}{spread} mHa")  # fmt: skip
    ax.axhline(0.0, color="k", ls="--", lw=1, label=zero_name)
    ax.set_xlabel("E_PT2 (mHa)")
    ax.set_ylabel(f"E_var - E({zero_name}) (mHa)")
    # At least MIN_SPAN_MHA on each axis, in plain numbers: a run at FCI (errors of 1e-11 mHa)
    # reads as points on zero, not as an axis labelled with a 1e-11 multiplier.
    for values, set_lim in ((x, ax.set_xlim), (y, ax.set_ylim)):
        low, high = min(float(np.min(values)), 0.0), max(float(np.max(values)), 0.0)
        pad = max(high - low, MIN_SPAN_MHA) * 0.08
        set_lim(low - pad, low + max(high - low, MIN_SPAN_MHA) + pad)
    ax.ticklabel_format(style="plain", useOffset=False)
    _legend_below(ax)


def plot_scan(summaries: list[dict[str, Any]], coordinates: list[float], path: str | os.PathLike[str]) -> None:
    """Potential-energy curve of several systems against their references."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(coordinates, [s["best_energy"] for s in summaries], "o-", label="HI-NQS-SQD")
    for name, label, style in (("fci", "FCI", "k--"), ("ccsd_t", "CCSD(T)", ":"), ("hf", "HF", "-.")):
        values = [s["references"][name] for s in summaries]
        if all(v is not None for v in values):
            ax.plot(coordinates, values, style, label=label)
    ax.set_xlabel("coordinate (as given in the config, e.g. Angstrom)")
    ax.set_ylabel("E (Ha)")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_png(fig, path)
