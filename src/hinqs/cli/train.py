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

from hinqs.cli._options import add_config, load_settings

COMMAND = "train"
HELP = "train the neural quantum state towards the SQD ground state (model.pt, history.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--hamiltonian", help="Hamiltonian folder: refuse a model of another system")
    parser.add_argument("--model", required=True, help="input checkpoint (model.pt of the previous iteration)")
    parser.add_argument("--teacher", required=True, help="SQD ground state (state.npz)")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    parser.add_argument("--iteration", required=True, type=int, help="iteration number (names the random stream)")
    parser.add_argument("--epochs", type=int, help="Adam steps (default: nqs.epochs)")
    parser.add_argument("--history", help="JSON file for the loss curve and diagnostics")
    parser.add_argument("--previous-samples", help="samples.npz already drawn: report the model's mass on them")
    parser.add_argument("--device", help="auto, cpu or cuda (default: nqs.device)")
    parser.add_argument("--max-teacher", type=int, help="most teacher determinants kept (nqs.max_teacher_determinants)")
    parser.add_argument("--batch-size", type=int, help="mini-batch size; 0 for full batch (nqs.batch_size)")
    parser.add_argument("--smoothing", type=float, help="conditional label smoothing against collapse (nqs.smoothing)")
    parser.add_argument(
        "--probe-samples",
        type=int,
        default=0,
        help="collapse-probe samples (default 0: `hinqs sample --previous-subspace` counts new ones at no cost)",
    )


def run(args: argparse.Namespace) -> int:
    from hinqs.errors import InputError
    from hinqs.loop.settings import with_overrides
    from hinqs.steps.nqs import train

    # Resolved for the system when the Hamiltonian is given: the first-order target scores the
    # excitations the expansion scores, whose width is derived from the system.
    settings = load_settings(args.config, args.hamiltonian)
    nqs = with_overrides(
        settings.nqs,
        epochs=args.epochs,
        device=args.device,
        max_teacher_determinants=args.max_teacher,
        batch_size=args.batch_size,
        smoothing=args.smoothing,
    )
    if args.iteration < 0 or args.probe_samples < 0:
        raise InputError("--iteration and --probe-samples must be non-negative")
    report = train(
        nqs,
        args.model,
        args.teacher,
        args.iteration,
        args.out,
        history=args.history,
        previous_samples=args.previous_samples,
        probe_samples=args.probe_samples,
        hamiltonian=args.hamiltonian,
        expansion=settings.subspace.expansion,
    )
    history = report.history
    probe = history.get("previous", {}).get("probe_new_unique")
    new = "" if probe is None else f", probe found {probe} new determinants"
    print(
        f"hinqs train: {history['epochs_run']} epochs on {report.n_teacher} teacher determinants: "
        f"KL {history['kl_before']:.4g} -> {history['kl_after']:.4g}{new} "
        f"({history['wall_s']:.1f} s on {report.device})"
    )
    return 0
