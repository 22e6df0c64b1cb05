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


def plot_convergence(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Energy error against the best reference (FCI, else CCSD(T)) per iteration, log scale."""
    plt = _pyplot()
    refs = summary["references"]
    ref_name, ref = summary["best_reference"]["name"], summary["best_reference"]["energy"]
    with_pt2 = [r for r in summary["per_iteration"] if r.get("e_pt2") is not None and r["energy"] is not None]
    if with_pt2:
        fig, (ax, ax_fit) = plt.subplots(1, 2, figsize=(11, 4))
        _plot_pt2_fit(ax_fit, summary, with_pt2)
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
    iterations = [r["iteration"] for r in summary["per_iteration"] if r["energy"] is not None]
    energies = [r["energy"] for r in summary["per_iteration"] if r["energy"] is not None]
    if ref is not None:
        errors = [max(abs(e - ref) * MHA, 1e-9) for e in energies]
        best = [max(abs(min(energies[: i + 1]) - ref) * MHA, 1e-9) for i in range(len(energies))]
        ax.semilogy(iterations, errors, "o", color="C0", alpha=0.6, label=f"iteration energy - {ref_name}")
        ax.semilogy(iterations, best, "-", color="C0", label=f"best so far - {ref_name}")
        if with_pt2:
            total = [max(abs(r["e_var_plus_pt2"] - ref) * MHA, 1e-9) for r in with_pt2]
            ax.semilogy([r["iteration"] for r in with_pt2], total, "s-", color="C4", label=f"E + PT2 - {ref_name}")
        ax.axhline(CHEMICAL_ACCURACY_MHA, color="grey", ls="--", label="chemical accuracy (1.6 mHa)")
        colours = iter(("C1", "C2", "C3"))
        for name, label in (("ccsd_t", "CCSD(T)"), ("ccsd", "CCSD"), ("hf", "HF")):
            if refs.get(name) is not None and label != ref_name and abs(refs[name] - ref) > 0:
                ax.axhline(
                    abs(refs[name] - ref) * MHA, ls=":", lw=1.2, color=next(colours), label=f"{label} - {ref_name}"
                )
        ax.set_ylabel(f"|E - E({ref_name})| (mHa)")
    else:
        ax.plot(iterations, energies, "o-", label="HI-NQS-SQD")
        ax.set_ylabel("E (Ha)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("iteration")
    ax.set_title(f"{summary['system']}: {summary['norb']} orbitals, nelec {tuple(summary['nelec'])}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_png(fig, path)


def _plot_pt2_fit(ax: Any, summary: dict[str, Any], with_pt2: list[dict[str, Any]]) -> None:
    """E_var against E_PT2 per iteration and the linear fit read at E_PT2 = 0 (mHa scale)."""
    x = np.array([r["e_pt2"] for r in with_pt2]) * MHA
    y = np.array([r["energy"] for r in with_pt2])
    bars = [(r.get("e_pt2_error") or 0.0) * MHA for r in with_pt2]
    ax.errorbar(x, y, xerr=bars, fmt="o", color="C0", label="iterations (E_PT2 +- standard error)")
    fit = (summary.get("pt2") or {}).get("extrapolated")
    if fit is not None:
        line = np.linspace(min(x.min(), 0.0), 0.0, 20)
        bar = fit.get("uncertainty", fit.get("spread"))
        spread = f" +- {bar * MHA:.3f} mHa" if bar is not None else ""
        ax.plot(line, fit["energy"] + fit["slope"] * line / MHA, "-", color="C1",
                label=f"fit: E(PT2 = 0) = {fit['energy']:.6f}{spread}")  # fmt: skip
    reference = summary["best_reference"]
    if reference.get("energy") is not None:
        ax.axhline(reference["energy"], color="k", ls="--", lw=1, label=str(reference["name"]))
    ax.set_xlabel("E_PT2 (mHa)")
    ax.set_ylabel("E_var (Ha)")
    ax.legend(fontsize=8)


def plot_scan(summaries: list[dict[str, Any]], coordinates: list[float], path: str | os.PathLike[str]) -> None:
    """Potential-energy curve of several systems against their references."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(coordinates, [s["best_energy"] for s in summaries], "o-", label="HI-NQS-SQD")
    for name, label, style in (("fci", "FCI", "k--"), ("ccsd_t", "CCSD(T)", ":"), ("hf", "HF", "-.")):
        values = [s["references"][name] for s in summaries]
        if all(v is not None for v in values):
            ax.plot(coordinates, values, style, label=label)
    ax.set_xlabel("coordinate")
    ax.set_ylabel("E (Ha)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_png(fig, path)
