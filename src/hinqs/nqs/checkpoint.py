"""Model, optimiser and random state in one file, written atomically.

A run is a chain ``init -> (sample, train) x K``; each step reads one checkpoint and writes
the next, so a killed job resumes from the last file and reproduces exactly what an
uninterrupted run gives. What has to be in the file for that:

- the model's shape and weights;
- Adam's state (moments and step counts): training continues the same optimiser across
  iterations, and a fresh Adam would take different steps;
- the random state: sampling draws from the stream ``("nqs-sample", iteration)`` derived
  from the run seed, so it needs only the seed; training draws mini-batches (when used)
  from ``("nqs-train", iteration)``, and the file keeps that stream's state together with
  how many epochs of the iteration are done, so a stage cut in two continues the stream
  where it stopped instead of restarting it.

File format (``torch.save`` of a dict, read with ``weights_only=True``; all tensors on CPU)::

    format            "hinqs-nqs-checkpoint/1"
    model_config      {norb, n_alpha, n_beta, d_model, n_layers, n_heads}
    model_state       state_dict of AutoregressiveNQS
    optimizer_state   state_dict of torch.optim.Adam, or null for a fresh one
    learning_rate     float, the Adam learning rate last used
    seed              int, the run seed
    system            str, the system name (the init stream is ("nqs-init", system))
    progress          {iteration: last trained iteration or -1, epochs_done: epochs of it}
    train_rng         null or {iteration: int, state: NumPy PCG64 state dict}
    history           list of short per-training-call summaries
    versions          {torch, hinqs}

Python API::

    state = init_checkpoint(norb, nelec, config["nqs"], seed=config["seed"], system="LiH")
    save_checkpoint(state, "model.pt")
    state = load_checkpoint("model.pt", device="cpu")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hinqs import __version__
from hinqs.errors import InputError
from hinqs.io.files import CHECKPOINT_FORMAT, read_checkpoint, write_checkpoint
from hinqs.nqs.model import AutoregressiveNQS, NQSConfig, build_model
from hinqs.nqs.settings import width_for
from hinqs.seeding import int_seed, numpy_stream

FORMAT = CHECKPOINT_FORMAT


@dataclass
class NQSState:
    """Everything one NQS step needs and hands on: the unit saved in a checkpoint.

    The Adam optimiser is built on first use: constructing a torch optimiser imports
    ``torch._dynamo`` (over a second), which ``init-model`` and ``sample`` do not need. Until
    then its saved state is kept as it was read, so saving writes it back unchanged.
    """

    model: AutoregressiveNQS
    seed: int
    system: str
    learning_rate: float
    iteration: int = -1  # last iteration trained on, -1 for a fresh model
    epochs_done: int = 0  # epochs of `iteration` done so far
    train_rng: dict[str, Any] | None = None  # {"iteration": k, "state": PCG64 state}
    history: list[dict[str, Any]] = field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None  # as read from the file, until `optimizer` is built
    _optimizer: torch.optim.Adam | None = field(default=None, repr=False)

    @property
    def config(self) -> NQSConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def optimizer(self) -> torch.optim.Adam:
        """Adam over the model's parameters, restored from the checkpoint's state on first use."""
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.model, self.learning_rate)
            if self.optimizer_state is not None:
                self._optimizer.load_state_dict(self.optimizer_state)
                self.optimizer_state = None
            self.set_learning_rate(self.learning_rate)
        return self._optimizer

    def train_generator(self, iteration: int) -> np.random.Generator:
        """The training stream of ``iteration``: continued from the file if that stage was begun."""
        generator = numpy_stream(self.seed, "nqs-train", iteration)
        if self.train_rng is not None and int(self.train_rng["iteration"]) == iteration:
            generator.bit_generator.state = self.train_rng["state"]
        return generator

    def set_learning_rate(self, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)
        if self._optimizer is not None:
            for group in self._optimizer.param_groups:
                group["lr"] = self.learning_rate


def make_optimizer(model: AutoregressiveNQS, learning_rate: float) -> torch.optim.Adam:
    """Adam over all model parameters (one group, so the state dict maps back unambiguously)."""
    return torch.optim.Adam(model.parameters(), lr=float(learning_rate))


def init_checkpoint(
    norb: int,
    nelec: tuple[int, int],
    nqs: Mapping[str, Any],
    *,
    seed: int,
    system: str,
    device: torch.device | str = "cpu",
) -> NQSState:
    """A fresh model and optimiser from the ``nqs`` settings (d_model, n_layers, n_heads, learning_rate).

    Weights are drawn from the stream ``("nqs-init", system)``, on the CPU, then moved to
    ``device``, so the initial model is the same on every device.
    """
    config = NQSConfig(
        norb=int(norb),
        n_alpha=int(nelec[0]),
        n_beta=int(nelec[1]),
        d_model=int(nqs["d_model"] or width_for(int(norb))),
        n_layers=int(nqs["n_layers"]),
        n_heads=int(nqs["n_heads"]),
    )
    model = build_model(config, int_seed(seed, "nqs-init", system)).to(device)
    learning_rate = float(nqs["learning_rate"])
    return NQSState(model=model, seed=int(seed), system=str(system), learning_rate=learning_rate)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(value) for value in obj)
    return obj


def checkpoint_dict(state: NQSState) -> dict[str, Any]:
    """The dict written to disk (tensors moved to the CPU)."""
    return {
        "format": FORMAT,
        "model_config": state.config.to_dict(),
        "model_state": _to_cpu(state.model.state_dict()),
        "optimizer_state": _to_cpu(
            state._optimizer.state_dict() if state._optimizer is not None else state.optimizer_state
        ),
        "learning_rate": state.learning_rate,
        "seed": state.seed,
        "system": state.system,
        "progress": {"iteration": state.iteration, "epochs_done": state.epochs_done},
        "train_rng": state.train_rng,
        "history": state.history,
        "versions": {"torch": str(torch.__version__), "hinqs": __version__},
    }


def save_checkpoint(state: NQSState, path: str | os.PathLike[str]) -> None:
    """Write the checkpoint atomically: a killed write never leaves a truncated file.

    The checkpoint is serialised in memory first and written with a plain file write:
    torch's own zip writer reports a full disk as a RuntimeError from C++, whereas a plain
    write raises the OSError that :func:`hinqs.io.atomic.atomic_path` turns into one line.
    Checkpoints are small (the model has thousands to millions of parameters).
    """
    write_checkpoint(path, checkpoint_dict(state))


def load_checkpoint(
    path: str | os.PathLike[str],
    device: torch.device | str = "cpu",
    *,
    norb: int | None = None,
    nelec: tuple[int, int] | None = None,
) -> NQSState:
    """Read a checkpoint onto ``device``; a missing, foreign or inconsistent file is an input error.

    With ``norb`` and ``nelec`` (the run's Hamiltonian, from its meta.json) a checkpoint made
    for another system is refused: its sampler would emit determinants of the wrong size.
    """
    data = read_checkpoint(path)
    try:
        config = NQSConfig.from_dict(data["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the checkpoint's model_config is invalid ({_first_line(exc)})") from None
    check_model_matches(config, path, norb, nelec)
    model = AutoregressiveNQS(config)
    check_weight_shapes(model, data.get("model_state"), path)
    try:
        model.load_state_dict(data["model_state"])
        progress = data["progress"]
        state = NQSState(
            model=model,
            optimizer_state=data["optimizer_state"],
            learning_rate=float(data["learning_rate"]),
            seed=int(data["seed"]),
            system=str(data["system"]),
            iteration=int(progress["iteration"]),
            epochs_done=int(progress["epochs_done"]),
            train_rng=data["train_rng"],
            history=list(data["history"]),
        )
    except KeyError as exc:
        raise InputError(f"{path}: the checkpoint lacks {exc.args[0]!r}") from None
    except (RuntimeError, TypeError, ValueError) as exc:
        # load_state_dict lists every mismatched tensor over many lines: keep the first.
        raise InputError(f"{path}: the weights do not fit its model_config ({_first_line(exc)})") from None
    model.to(device)
    return state


def check_model_matches(
    config: NQSConfig, path: str | os.PathLike[str], norb: int | None, nelec: tuple[int, int] | None
) -> None:
    """A checkpoint's system shape must be the run's: same orbitals, same electrons of each spin."""
    if norb is None or nelec is None:
        return
    if (config.norb, config.nelec) != (int(norb), (int(nelec[0]), int(nelec[1]))):
        raise InputError(
            f"{path}: the model was made for norb={config.norb}, nelec={config.nelec}, but the Hamiltonian "
            f"has norb={norb}, nelec={tuple(nelec)}: a checkpoint of another system"
        )


def check_weight_shapes(model: AutoregressiveNQS, weights: Any, path: str | os.PathLike[str]) -> None:
    """Name the first tensor whose shape the checkpoint's own model_config does not produce.

    torch's load_state_dict reports this over many lines; a hand-edited or mixed-up file
    deserves one that says which tensor and what was expected.
    """
    if not isinstance(weights, dict):
        raise InputError(f"{path}: the checkpoint lacks 'model_state'")
    for key, expected in model.state_dict().items():
        found = weights.get(key)
        if not isinstance(found, torch.Tensor):
            raise InputError(f"{path}: the weights lack tensor {key!r} that its model_config needs")
        if tuple(found.shape) != tuple(expected.shape):
            raise InputError(
                f"{path}: the weights do not fit its model_config: {key!r} has shape {tuple(found.shape)}, "
                f"expected {tuple(expected.shape)}"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
