"""Sample determinants from an NQS checkpoint: unique determinants with counts -> samples.npz.

Deterministic given (checkpoint, seed, iteration): the counts are split down the orbital
tree with the named stream ("nqs-sample", ITERATION) of the seed. Writes ``alpha``, ``beta``
(uint64 CI strings), ``counts`` (int64) and ``log_prob`` (float64, the model's log p(x) at
temperature 1); ``--stats`` writes a small JSON (unique count, new determinants against
``--previous-subspace``, time).
"""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, load_settings

COMMAND = "sample"
RENAMED = {"--known": "--previous-subspace"}
HELP = "draw determinants from the neural quantum state (samples.npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--hamiltonian", help="Hamiltonian folder: refuse a model of another system")
    parser.add_argument("--model", required=True, help="model checkpoint (model.pt)")
    parser.add_argument("--out", required=True, help="samples.npz to write")
    parser.add_argument("--iteration", required=True, type=int, help="iteration number (names the random stream)")
    parser.add_argument("--samples", type=int, help="number of samples (default: nqs.samples)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: nqs.temperature)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: nqs.device)")
    parser.add_argument("--seed", type=int, help="run seed (default: the config's seed)")
    parser.add_argument("--max-batch", type=int, help="most prefixes held at once (memory bound; changes the draws)")
    parser.add_argument("--previous-subspace", help="the previous subspace (.npz): count new determinants against it")
    parser.add_argument("--stats", help="JSON file for sampling statistics")


def _model_shape(path: str) -> tuple[int, tuple[int, int]]:
    """norb and nelec of the system a model checkpoint describes."""
    from hinqs.errors import InputError
    from hinqs.io.files import read_checkpoint

    try:
        shape = read_checkpoint(path)["model_config"]
        return int(shape["norb"]), (int(shape["n_alpha"]), int(shape["n_beta"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the checkpoint's model_config is invalid ({exc})") from None


def run(args: argparse.Namespace) -> int:
    from hinqs.errors import InputError
    from hinqs.loop.settings import with_overrides
    from hinqs.steps.nqs import sample

    settings = load_settings(args.config, args.hamiltonian)
    if args.hamiltonian is None and args.samples is None and settings.nqs.samples is None:
        settings = settings.for_system(*_model_shape(args.model))  # null sizes derived from the model's system
    nqs = with_overrides(
        settings.nqs, samples=args.samples, temperature=args.temperature, device=args.device, max_batch=args.max_batch
    )
    seed = settings.seed if args.seed is None else args.seed
    if seed < 0 or args.iteration < 0:
        raise InputError("--seed and --iteration must be non-negative")
    stats = sample(
        nqs,
        seed,
        args.model,
        args.iteration,
        args.out,
        stats=args.stats,
        previous_subspace=args.previous_subspace,
        hamiltonian=args.hamiltonian,
    )
    extra = f", {stats['n_new_unique']} new" if "n_new_unique" in stats else ""
    print(
        f"hinqs sample: {stats['n_samples']} samples -> {stats['n_unique']} unique{extra} "
        f"in {stats['wall_s']:.2f} s on {stats['device']}"
    )
    return 0
