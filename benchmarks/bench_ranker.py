"""Can the network rank expansion candidates? recall@N of its order against exact EN-PT2.

On a finished run (the folder of one system under results/), for iteration K: every single
and double same-spin excitation of every string of the iteration's ground state is a
candidate (the alpha channel; closed shells have one). Each is scored twice:

- exact: its EN-PT2 gain against the state, as the subspace step scores candidates
  (one rectangular product of hinqs' kernel over candidates x the 128 heaviest partners + singles);
- network: ``log sum_b p(x, b)`` over the 8 heaviest partner strings, from the model trained
  on that state (``iter_K/model.pt``) and, for contrast, from the untrained model
  (``iter_000/model.pt``), in batched forward passes (hinqs.nqs.ranker).

recall@N = |network top N  &  exact top N| / N, over all candidates and over the held-out
ones (those the expansion does not score: not excitations of its 64 heaviest parents, hence
never in the network's first-order target either); "expansion" is the recall of what the
loop does today (exact scores, but only for the excitations of the heaviest parents); random
is N / candidates. Wall seconds of each scoring are printed.

    python benchmarks/bench_ranker.py results/c2_631g --iteration 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hinqs.io.files import read_state
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.io.layout import SystemLayout
from hinqs.nqs.checkpoint import load_checkpoint
from hinqs.nqs.ranker import rank_strings
from hinqs.subspace.expansion import (
    _partner_columns,
    _pt2_scores,
    _top,
    excitations,
    teacher_energy_and_diagonal,
)

PARTNERS_EXACT = 128
PARTNERS_NETWORK = 8
PARENTS = 64


def _recall(score: np.ndarray, exact: np.ndarray, n: int) -> float:
    n = min(n, len(score))
    top_net = set(np.argsort(-score, kind="stable")[:n].tolist())
    top_exact = set(np.argsort(-exact, kind="stable")[:n].tolist())
    return len(top_net & top_exact) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system_dir", type=Path, help="results/<system> of a finished run")
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--n", default="50,100,200,500", help="N values of recall@N")
    args = parser.parse_args()
    layout = SystemLayout(args.system_dir)
    ham = load_hamiltonian(layout.hamiltonian)
    hcore, eri = np.asarray(ham.hcore), np.asarray(ham.eri)
    norb, nelec = ham.norb, (int(ham.nelec[0]), int(ham.nelec[1]))
    files = layout.iteration(args.iteration)
    state = read_state(files.state, sort=True)
    amps = state.amplitudes / np.linalg.norm(state.amplitudes)
    own, other = state.strs_a, state.strs_b
    candidates = np.setdiff1d(excitations(own, norb), own)
    parents = _top(own, (amps**2).sum(axis=1), PARENTS)
    scored_today = np.isin(candidates, excitations(parents, norb))

    started = time.perf_counter()
    from hinqs.io.files import GroundState

    energy, _ = teacher_energy_and_diagonal(GroundState(own, other, amps), hcore, eri, nelec)
    partners, partner_amps = _partner_columns(other, amps, norb, PARTNERS_EXACT)
    exact, _ = _pt2_scores(hcore, eri, nelec, own, partners, partner_amps, candidates, energy)
    exact_s = time.perf_counter() - started
    heavy_partners = _top(other, (amps**2).sum(axis=0), PARTNERS_NETWORK)
    scores, seconds = {}, {}
    for name, path in (("trained", files.model), ("untrained", layout.iteration(0).model)):
        model = load_checkpoint(path, "cpu").model
        started = time.perf_counter()
        scores[name] = rank_strings(model, candidates, heavy_partners)
        seconds[name] = time.perf_counter() - started
    expansion_score = np.where(scored_today, exact, -np.inf)

    print(f"{args.system_dir} iteration {args.iteration}: {len(own)} strings, {len(candidates)} candidates "
          f"({int((~scored_today).sum())} held out: not excitations of the {PARENTS} heaviest parents)")  # fmt: skip
    print(f"exact PT2 of all candidates {exact_s:.2f} s; network {seconds['trained']:.2f} s "
          f"({len(candidates) * len(heavy_partners)} forward determinants, CPU)\n")  # fmt: skip
    print(
        "| N | trained | untrained | expansion today | random "
        "| held-out trained | held-out untrained | held-out random |"
    )
    print("|---|---|---|---|---|---|---|---|")
    held = ~scored_today
    for n in (int(v) for v in args.n.split(",")):
        row = [
            _recall(scores["trained"], exact, n),
            _recall(scores["untrained"], exact, n),
            _recall(expansion_score, exact, n),
            min(n, len(exact)) / len(exact),
            _recall(scores["trained"][held], exact[held], n),
            _recall(scores["untrained"][held], exact[held], n),
            min(n, int(held.sum())) / max(int(held.sum()), 1),
        ]
        print(f"| {n} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
