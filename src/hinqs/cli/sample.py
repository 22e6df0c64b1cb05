"""Sample determinants from an NQS checkpoint: unique determinants with counts -> samples.npz.

Deterministic given (checkpoint, seed, iteration): the counts are split down the orbital
tree with the named stream ("nqs-sample", ITERATION) of the seed. Writes ``alpha``, ``beta``
(uint64 CI strings), ``counts`` (int64) and ``log_prob`` (float64, the model's log p(x) at
temperature 1); ``--stats`` writes a small JSON (unique count, new determinants against
``--known``, time).
"""

from __future__ import annotations

import argparse

COMMAND = "sample"
HELP = "draw determinants from the neural quantum state (samples.npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model checkpoint (model.pt)")
    parser.add_argument("--out", required=True, help="samples.npz to write")
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument("--iteration", required=True, type=int, help="iteration number (names the random stream)")
    parser.add_argument("--samples", type=int, help="number of samples (default: nqs.samples)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: nqs.temperature)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: nqs.device)")
    parser.add_argument("--seed", type=int, help="run seed (default: the config's seed)")
    parser.add_argument("--max-batch", type=int, help="most prefixes held at once (memory bound; changes the draws)")
    parser.add_argument("--known", help="determinant .npz (e.g. the previous basis) to count new determinants against")
    parser.add_argument("--stats", help="JSON file for sampling statistics")


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from hinqs.atomic import save_npz, write_json
    from hinqs.basis import load_determinants
    from hinqs.config import load_config
    from hinqs.defaults import resolve_config
    from hinqs.determinants import validate_determinants
    from hinqs.errors import InputError
    from hinqs.nqs.checkpoint import load_checkpoint
    from hinqs.nqs.device import configure_determinism, resolve_device
    from hinqs.nqs.sampler import sample_for_iteration
    from hinqs.nqs.settings import nqs_settings
    from hinqs.nqs.trainer import known_mask

    config = load_config(args.config)
    device = resolve_device(args.device or nqs_settings(config)["device"])
    configure_determinism(device)
    state = load_checkpoint(args.model, device)
    config = resolve_config(config, state.config.norb, state.config.nelec)  # null sizes from the system
    nqs = nqs_settings(config)
    n_samples = nqs["samples"] if args.samples is None else args.samples
    temperature = nqs["temperature"] if args.temperature is None else args.temperature
    seed = config["seed"] if args.seed is None else args.seed
    max_batch = nqs["max_batch"] if args.max_batch is None else args.max_batch
    if n_samples < 1:
        raise InputError("--samples must be at least 1")
    if not temperature > 0:
        raise InputError("--temperature must be positive")
    if seed < 0 or args.iteration < 0:
        raise InputError("--seed and --iteration must be non-negative")
    if max_batch < 4:
        raise InputError("--max-batch must be at least 4")
    started = time.perf_counter()
    samples = sample_for_iteration(state.model, n_samples, seed, args.iteration, temperature, max_batch)
    wall = time.perf_counter() - started
    validate_determinants(samples.alpha, samples.beta, state.config.norb, state.config.nelec)
    save_npz(args.out, alpha=samples.alpha, beta=samples.beta, counts=samples.counts, log_prob=samples.log_prob)
    stats = {
        "iteration": args.iteration,
        "seed": seed,
        "device": str(device),
        "n_samples": n_samples,
        "temperature": temperature,
        "n_unique": len(samples),
        "max_count_fraction": float(samples.counts.max() / n_samples),
        "sampled_mass": float(np.exp(samples.log_prob).sum()),
        "wall_s": wall,
    }
    if args.known:
        known = load_determinants(args.known)
        new = ~known_mask(samples.alpha, samples.beta, known.alpha, known.beta)
        stats["n_known"] = len(known)
        stats["n_new_unique"] = int(new.sum())
        stats["new_sample_fraction"] = float(samples.counts[new].sum() / n_samples)
    if args.stats:
        write_json(args.stats, stats)
    extra = f", {stats['n_new_unique']} new" if "n_new_unique" in stats else ""
    print(f"hinqs sample: {n_samples} samples -> {len(samples)} unique{extra} in {wall:.2f} s on {device}")
    return 0
