"""Train the NQS on the iteration's teacher (the SQD ground state) and write the next checkpoint.

The teacher is |c|^2 of ``state.npz``'s amplitudes over its alpha x beta product space,
truncated and renormalised (see hinqs.nqs.teacher). Adam's state carries over from the input
checkpoint. ``--history`` gets the loss curve, the KL before and after, the teacher's size
and, with ``--previous-samples``, the model's mass on those determinants before training
(from the sampler's stored log_prob) and after (exact up to 8192 determinants), and how
many new unique determinants a probe sampling of the trained model finds: a collapse check
(``probe_new_sample_fraction`` estimates the mass off the previous samples).
"""

from __future__ import annotations

import argparse

COMMAND = "train"
HELP = "train the neural quantum state towards the SQD ground state (model.pt, history.json)"
EXACT_MASS_MAX = 8192  # previous determinants up to which the model's mass on them is computed exactly


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="input checkpoint (model.pt of the previous iteration)")
    parser.add_argument("--teacher", required=True, help="SQD ground state (state.npz)")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument("--iteration", required=True, type=int, help="iteration number (names the random stream)")
    parser.add_argument("--epochs", type=int, help="Adam steps (default: nqs.epochs)")
    parser.add_argument("--history", help="JSON file for the loss curve and diagnostics")
    parser.add_argument("--previous-samples", help="samples.npz already drawn: report the model's mass on them")
    parser.add_argument("--device", help="auto, cpu or cuda (default: nqs.device)")
    parser.add_argument("--max-teacher", type=int, help="most teacher determinants kept (default 4096)")
    parser.add_argument("--batch-size", type=int, help="mini-batch size; 0 for full batch (default 256)")
    parser.add_argument("--smoothing", type=float, help="conditional label smoothing against collapse (default 0.01)")
    parser.add_argument(
        "--probe-samples",
        type=int,
        help="collapse-probe samples (default 0: `hinqs sample --known` reports new determinants at no cost)",
    )


def _sampled_mass(path: str) -> float | None:
    """Sum of exp(log_prob) stored by ``hinqs sample`` (None when the file has no log_prob)."""
    import numpy as np

    with np.load(path) as data:
        return float(np.exp(data["log_prob"]).sum()) if "log_prob" in data.files else None


def run(args: argparse.Namespace) -> int:
    from hinqs.atomic import write_json
    from hinqs.basis import load_determinants
    from hinqs.config import load_config
    from hinqs.errors import InputError
    from hinqs.nqs.checkpoint import load_checkpoint, save_checkpoint
    from hinqs.nqs.device import configure_determinism, resolve_device
    from hinqs.nqs.settings import nqs_settings
    from hinqs.nqs.teacher import load_teacher
    from hinqs.nqs.trainer import probe_new, support_mass, train

    config = load_config(args.config)
    nqs = nqs_settings(config)
    epochs = nqs["epochs"] if args.epochs is None else args.epochs
    max_teacher = nqs["max_teacher_determinants"] if args.max_teacher is None else args.max_teacher
    batch_size = nqs["batch_size"] if args.batch_size is None else args.batch_size
    smoothing = nqs["smoothing"] if args.smoothing is None else args.smoothing
    probe_samples = 0 if args.probe_samples is None else args.probe_samples
    if epochs < 0 or args.iteration < 0 or probe_samples < 0 or batch_size < 0:
        raise InputError("--epochs, --iteration, --batch-size and --probe-samples must be non-negative")
    if max_teacher < 1:
        raise InputError("--max-teacher must be at least 1")
    if not 0.0 <= smoothing < 1.0:
        raise InputError("--smoothing must be in [0, 1)")
    device = resolve_device(args.device or nqs["device"])
    configure_determinism(device)
    state = load_checkpoint(args.model, device)
    cfg = state.config
    teacher = load_teacher(
        args.teacher,
        norb=cfg.norb,
        nelec=cfg.nelec,
        max_determinants=max_teacher,
        min_weight=nqs["teacher_min_weight"],
    )
    previous = load_determinants(args.previous_samples) if args.previous_samples else None
    # Mass of the input model on the previous samples: free when the sampler stored log_prob.
    mass_before = _sampled_mass(args.previous_samples) if previous is not None else None
    report = train(
        state,
        teacher,
        args.iteration,
        epochs,
        learning_rate=nqs["learning_rate"],
        smoothing=smoothing,
        batch_size=batch_size or None,
    )
    history = {**report.as_dict(), "device": str(device), "seed": state.seed}
    if previous is not None:
        summary: dict[str, float | int | None] = {"n_unique": len(previous), "mass_before": mass_before}
        if len(previous) <= EXACT_MASS_MAX:
            summary["mass_after"] = support_mass(state.model, previous.alpha, previous.beta)
        if probe_samples:
            probe = probe_new(
                state.model,
                probe_samples,
                state.seed,
                args.iteration,
                previous.alpha,
                previous.beta,
                nqs["temperature"],
                nqs["max_batch"],
            )
            summary.update(probe)
        history["previous"] = summary
    save_checkpoint(state, args.out)
    if args.history:
        write_json(args.history, history)
    new = ""
    if previous is not None and "probe_new_unique" in history["previous"]:
        new = f", probe found {history['previous']['probe_new_unique']} new determinants"
    print(
        f"hinqs train: {epochs} epochs on {len(teacher)} teacher determinants: "
        f"KL {report.kl_before:.4g} -> {report.kl_after:.4g}{new} ({report.wall_s:.1f} s on {device})"
    )
    return 0
