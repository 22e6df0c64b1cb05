"""Sampling speed and memory: unique-sample tree with a key/value cache against simpler samplers.

Measures, for each system size and device, unique determinants per second and peak memory of

- ``unique+cache``: :func:`hinqs.nqs.sampler.sample_unique` (counts split down the orbital
  tree, one cached transformer step per unique prefix and orbital);
- ``unique,no-cache``: the same tree, but every step runs the transformer over the whole
  prefix (what the cache saves);
- ``plain``: one sample at a time, one full forward pass of the prefix per orbital, no cache
  (the textbook autoregressive sampler).

Each case runs in a fresh process (spawned), so peak memory is that case's alone: on the CPU
the peak resident set size above the process's size after building the model and a warm-up,
polled every 2 ms; on CUDA ``torch.cuda.max_memory_allocated``. A fresh model spreads its
samples nearly uniformly (almost every sample unique: the worst case for the tree);
``--head-scale`` sharpens it to look more like a trained one.

    python benchmarks/bench_sampler.py                        # 16 and 26 orbitals, CPU (+ CUDA if present)
    python benchmarks/bench_sampler.py --systems 16:5:5 --samples 1000 10000 --plain-samples 100
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from typing import Any

import numpy as np


def _system(text: str) -> tuple[int, int, int]:
    norb, n_alpha, n_beta = (int(x) for x in text.split(":"))
    return norb, n_alpha, n_beta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--systems", nargs="+", type=_system, default=[(16, 5, 5), (26, 7, 7)], help="NORB:NALPHA:NBETA ..."
    )
    parser.add_argument("--samples", nargs="+", type=int, default=[1000, 10000, 100000], help="sample counts (tree)")
    parser.add_argument("--plain-samples", type=int, default=200, help="samples for the one-at-a-time sampler")
    parser.add_argument("--nocache-max", type=int, default=10000, help="largest sample count run without the cache")
    parser.add_argument("--devices", nargs="+", help="cpu and/or cuda (default: cpu, plus cuda when available)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--head-scale", type=float, default=1.0, help="multiply the output head (sharper model)")
    parser.add_argument("--max-batch", type=int, default=None, help="sampler frontier bound (default: library's)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- samplers without the cache


def _nocache_unique(model: Any, n_samples: int, rng: np.random.Generator) -> int:
    """The unique-sample tree, but each step recomputes the whole prefix (no key/value cache)."""
    import torch

    from hinqs.nqs.model import BOS, STATE_ALPHA, STATE_BETA, valid_states
    from hinqs.nqs.sampler import masked_log_softmax, split_counts

    cfg = model.config
    a_of, b_of = np.array(STATE_ALPHA), np.array(STATE_BETA)
    tokens = np.full((1, 1), BOS, dtype=np.int64)
    counts = np.array([n_samples])
    used_a = np.zeros(1, dtype=np.int64)
    used_b = np.zeros(1, dtype=np.int64)
    with torch.inference_mode():
        for pos in range(cfg.norb):
            logits = model.forward_tokens(torch.from_numpy(tokens).to(model.device))[:, -1]
            mask = valid_states(cfg.n_alpha - used_a, cfg.n_beta - used_b, cfg.norb - pos)
            probs = np.exp(masked_log_softmax(logits.double().cpu().numpy(), mask))
            children = split_counts(counts, probs, rng)
            parent, state = np.nonzero(children)
            tokens = np.concatenate([tokens[parent], state[:, None]], axis=1)
            counts = children[parent, state]
            used_a = used_a[parent] + a_of[state]
            used_b = used_b[parent] + b_of[state]
    return len(counts)


def _plain(model: Any, n_samples: int, rng: np.random.Generator) -> int:
    """One sample at a time, one forward pass over the prefix per orbital."""
    import torch

    from hinqs.nqs.model import BOS, STATE_ALPHA, STATE_BETA, valid_states
    from hinqs.nqs.sampler import masked_log_softmax

    cfg = model.config
    seen = set()
    with torch.inference_mode():
        for _ in range(n_samples):
            tokens = [BOS]
            used_a = used_b = 0
            for pos in range(cfg.norb):
                logits = model.forward_tokens(torch.tensor([tokens], device=model.device))[0, -1]
                mask = valid_states(np.array(cfg.n_alpha - used_a), np.array(cfg.n_beta - used_b), cfg.norb - pos)
                probs = np.exp(masked_log_softmax(logits.double().cpu().numpy(), mask))
                state = int(rng.choice(4, p=probs / probs.sum()))
                tokens.append(state)
                used_a += STATE_ALPHA[state]
                used_b += STATE_BETA[state]
            seen.add(tuple(tokens))
    return len(seen)


# ---------------------------------------------------------------- one case in a fresh process


class _PeakRSS:
    """Poll this process's resident set size in a thread; report the peak above the start."""

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.base = self._process.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _case(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from hinqs.loop.settings import RunSettings
    from hinqs.nqs.model import NQSConfig, build_model
    from hinqs.nqs.sampler import sample_unique

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    norb, n_alpha, n_beta = spec["system"]
    config = NQSConfig(norb, n_alpha, n_beta, spec["d_model"], spec["n_layers"], spec["n_heads"])
    model = build_model(config, 1234).to(device)
    with torch.no_grad():
        model.head.weight.mul_(spec["head_scale"])
    max_batch = spec["max_batch"] or RunSettings.defaults().nqs.max_batch
    methods = {
        "unique+cache": lambda n, rng: len(sample_unique(model, n, rng, temperature=1.0, max_batch=max_batch)),
        "unique,no-cache": lambda n, rng: _nocache_unique(model, n, rng),
        "plain": lambda n, rng: _plain(model, n, rng),
    }
    run = methods[spec["method"]]
    run(min(spec["samples"], 50), np.random.default_rng(0))  # warm-up (allocator, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rng = np.random.default_rng(1)
    with _PeakRSS() as rss:
        start = time.perf_counter()
        unique = run(spec["samples"], rng)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() - base) if device.type == "cuda" else (rss.peak - rss.base)
    return {**spec, "unique": unique, "wall_s": wall, "peak_mb": peak / 2**20}


def _run_isolated(spec: dict[str, Any]) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_case, (spec,))


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    header = f"{'device':6} {'norb':>4} {'nelec':>7} {'method':16} {'samples':>8} {'unique':>8} {'time s':>8}"
    header += f" {'unique/s':>10} {'peak MB':>8}"
    print(f"# torch {torch.__version__}, threads={args.threads or torch.get_num_threads()}, "
          f"model d={args.d_model} L={args.n_layers} H={args.n_heads}, head scale {args.head_scale}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for device in devices:
        for system in args.systems:
            cases = [("unique+cache", n) for n in args.samples]
            cases += [("unique,no-cache", n) for n in args.samples if n <= args.nocache_max]
            cases.append(("plain", args.plain_samples))
            for method, n in cases:
                spec = {
                    "device": device,
                    "system": system,
                    "method": method,
                    "samples": n,
                    "threads": args.threads,
                    "d_model": args.d_model,
                    "n_layers": args.n_layers,
                    "n_heads": args.n_heads,
                    "head_scale": args.head_scale,
                    "max_batch": args.max_batch,
                }
                r = _run_isolated(spec)
                nelec = f"({system[1]},{system[2]})"
                print(
                    f"{device:6} {system[0]:>4} {nelec:>7} {method:16} {n:>8} {r['unique']:>8} {r['wall_s']:>8.3f}"
                    f" {r['unique'] / r['wall_s']:>10.0f} {r['peak_mb']:>8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
