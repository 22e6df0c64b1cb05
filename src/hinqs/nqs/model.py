"""An autoregressive transformer over spatial orbitals whose support is exactly the valid determinants.

Why a transformer: each orbital's occupation depends on every earlier one (the electron
count left and the correlations of the ground state), and attention sees the whole prefix at
a cost that stays small for the 10-60 orbitals an SQD run can handle; its key/value cache
lets the sampler add one orbital at a time without recomputing the prefix.

One token per spatial orbital, four states::

    0 = empty, 1 = alpha, 2 = beta, 3 = double (alpha and beta)

Orbital ``i`` is predicted from the states of orbitals ``0..i-1`` (a begin token stands in
front). Before normalisation, the states that would exceed the alpha or beta electrons left,
or leave too few orbitals to place the rest, get probability zero (:func:`valid_states`).
So every conditional is a distribution over states that can still be completed, the model
gives every valid determinant a positive probability and every other one zero, the
probabilities of all valid determinants sum to 1, and :meth:`AutoregressiveNQS.log_prob` is
exactly the log-probability with which :mod:`hinqs.nqs.sampler` draws a determinant. Open
shells (``n_alpha != n_beta``) need nothing special: the two counts are masked separately.

Conditionals are normalised in float64 (the network itself runs in float32), so the total
probability is 1 to ~1e-12 whatever the rounding of the logits.

Determinism on CUDA: the token embedding is a one-hot matrix product, not an index lookup,
because the backward pass of ``nn.Embedding`` (an index accumulate) is non-deterministic on
CUDA; attention is written out (matmul + softmax) rather than calling the fused
``scaled_dot_product_attention`` kernels, whose backward passes are non-deterministic there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hinqs.io.determinants import MAX_ORBITALS, occupations_to_strings, strings_to_occupations

N_STATES = 4
BOS = 4  # begin token: the input in front of orbital 0
STATE_ALPHA = (0, 1, 0, 1)  # alpha electrons in each state
STATE_BETA = (0, 0, 1, 1)  # beta electrons in each state

KVCache = list[tuple[Tensor, Tensor]]  # one (keys, values) per layer, each (B, heads, t, head_dim)


@dataclass(frozen=True)
class NQSConfig:
    """Shape of a model: the system it describes and the size of the network."""

    norb: int
    n_alpha: int
    n_beta: int
    d_model: int
    n_layers: int
    n_heads: int

    def __post_init__(self) -> None:
        if not 1 <= self.norb <= MAX_ORBITALS:
            raise ValueError(f"norb must be between 1 and {MAX_ORBITALS}, got {self.norb}")
        if not (0 <= self.n_alpha <= self.norb and 0 <= self.n_beta <= self.norb):
            raise ValueError(f"nelec ({self.n_alpha}, {self.n_beta}) does not fit in {self.norb} orbitals")
        if self.d_model < 1 or self.n_layers < 1 or self.n_heads < 1 or self.d_model % self.n_heads:
            raise ValueError("d_model, n_layers, n_heads must be positive and n_heads must divide d_model")

    @property
    def nelec(self) -> tuple[int, int]:
        return (self.n_alpha, self.n_beta)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> NQSConfig:
        return cls(**{key: int(data[key]) for key in cls.__dataclass_fields__})


def valid_states(rem_alpha, rem_beta, rem_orbitals):  # type: ignore[no-untyped-def]
    """Which of the 4 states may fill the current orbital: ``(..., 4)`` bool.

    ``rem_alpha``/``rem_beta`` are the electrons still to place, ``rem_orbitals`` the orbitals
    left including the current one. Works on NumPy arrays and torch tensors alike (only
    broadcasting comparisons), so the sampler and ``log_prob`` share one rule.
    """
    if isinstance(rem_alpha, Tensor):
        a = torch.tensor(STATE_ALPHA, device=rem_alpha.device)
        b = torch.tensor(STATE_BETA, device=rem_alpha.device)
    else:
        a, b = np.array(STATE_ALPHA), np.array(STATE_BETA)
    k = rem_orbitals if isinstance(rem_orbitals, int | np.integer) else rem_orbitals[..., None]
    ra, rb = rem_alpha[..., None], rem_beta[..., None]
    left_a, left_b = ra - a, rb - b
    return (left_a >= 0) & (left_b >= 0) & (left_a <= k - 1) & (left_b <= k - 1)


def states_from_strings(alpha: np.ndarray, beta: np.ndarray, norb: int) -> Tensor:
    """Paired uint64 CI strings -> ``(n, norb)`` int64 states (alpha + 2 * beta)."""
    occ_a = strings_to_occupations(np.asarray(alpha, dtype=np.uint64), norb).astype(np.int64)
    occ_b = strings_to_occupations(np.asarray(beta, dtype=np.uint64), norb).astype(np.int64)
    return torch.from_numpy(occ_a + 2 * occ_b)


def strings_from_states(states: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, norb)`` states -> paired uint64 CI strings ``(alpha, beta)``."""
    states = states.cpu().numpy() if isinstance(states, Tensor) else np.asarray(states)
    return occupations_to_strings(states & 1), occupations_to_strings(states >> 1)


class _Block(nn.Module):
    """Pre-norm transformer block: causal self-attention then a 4x MLP, both residual."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, hd)
        return q, k, v

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        y = scores.softmax(dim=-1) @ v  # (B, H, Tq, hd)
        batch, _, length, _ = y.shape
        return self.proj(y.transpose(1, 2).reshape(batch, length, -1))

    def forward(self, x: Tensor, causal_mask: Tensor) -> Tensor:
        q, k, v = self._split(self.ln1(x))
        x = x + self._attend(q, k, v, causal_mask)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))

    def step(
        self, x: Tensor, position: int, cache: tuple[Tensor, Tensor] | None, length: int
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One new position per row: ``x`` is (B, 1, d); keys/values of the prefix come from ``cache``.

        The cache is preallocated at full length ``(B, H, length, hd)`` and written in place.
        """
        q, k, v = self._split(self.ln1(x))
        if cache is None:
            shape = (x.shape[0], self.n_heads, length, self.head_dim)
            cache = (x.new_zeros(shape), x.new_zeros(shape))
        keys, values = cache
        keys[:, :, position] = k[:, :, 0]
        values[:, :, position] = v[:, :, 0]
        x = x + self._attend(q, keys[:, :, : position + 1], values[:, :, : position + 1], None)
        return x + self.out(F.gelu(self.fc(self.ln2(x)))), cache


class AutoregressiveNQS(nn.Module):
    """The autoregressive model. Build it with :func:`build_model` to get seeded weights."""

    def __init__(self, config: NQSConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Parameter(torch.zeros(N_STATES + 1, d))
        self.position_embedding = nn.Parameter(torch.zeros(config.norb, d))
        self.blocks = nn.ModuleList(_Block(d, config.n_heads) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, N_STATES)
        self.register_buffer("_state_alpha", torch.tensor(STATE_ALPHA), persistent=False)
        self.register_buffer("_state_beta", torch.tensor(STATE_BETA), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.position_embedding.device

    def _embed(self, tokens: Tensor, positions: slice | int) -> Tensor:
        onehot = F.one_hot(tokens, N_STATES + 1).to(self.token_embedding.dtype)
        return onehot @ self.token_embedding + self.position_embedding[positions]

    def forward_tokens(self, tokens: Tensor) -> Tensor:
        """Logits ``(B, T, 4)`` for input tokens ``(B, T)`` (begin token then states), no cache."""
        length = tokens.shape[1]
        x = self._embed(tokens, slice(0, length))
        mask = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))

    def logits(self, states: Tensor) -> Tensor:
        """Unmasked logits ``(B, norb, 4)`` of every orbital given the preceding ones (teacher forcing)."""
        bos = torch.full((states.shape[0], 1), BOS, dtype=torch.long, device=states.device)
        return self.forward_tokens(torch.cat([bos, states[:, :-1]], dim=1))

    def step(self, tokens: Tensor, position: int, cache: KVCache | None) -> tuple[Tensor, KVCache]:
        """Logits ``(B, 4)`` of orbital ``position`` given the token of ``position - 1`` and the cache.

        ``tokens`` holds the begin token at position 0 and the previous orbital's state after.
        The cache holds one ``(keys, values)`` pair per layer, each ``(B, H, norb, hd)``
        (views of larger buffers are fine); it is allocated on the first step when ``None``
        and written in place at ``position``, so a step copies nothing of the prefix.
        """
        x = self._embed(tokens[:, None], slice(position, position + 1))
        new_cache: KVCache = []
        for index, block in enumerate(self.blocks):
            x, kv = block.step(x, position, None if cache is None else cache[index], self.config.norb)
            new_cache.append(kv)
        return self.head(self.ln_f(x))[:, 0, :], new_cache

    def masks(self, states: Tensor) -> Tensor:
        """``(B, norb, 4)`` bool: which states are allowed at each orbital, given the prefix of ``states``."""
        cfg = self.config
        occ_a = self._state_alpha[states]
        occ_b = self._state_beta[states]
        used_a = occ_a.cumsum(1) - occ_a
        used_b = occ_b.cumsum(1) - occ_b
        remaining = cfg.norb - torch.arange(cfg.norb, device=states.device)
        return valid_states(cfg.n_alpha - used_a, cfg.n_beta - used_b, remaining)

    def conditional_log_probs(self, states: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
        """float64 masked log-conditionals ``(B, norb, 4)`` (``-inf`` where forbidden) and the mask.

        Rows where nothing is allowed (only reachable through an invalid prefix) are left
        unmasked to keep the arithmetic finite; :meth:`log_prob` turns such inputs into -inf.
        """
        mask = self.masks(states)
        safe = mask | ~mask.any(-1, keepdim=True)
        logits = self.logits(states).double() / temperature
        return logits.masked_fill(~safe, float("-inf")).log_softmax(-1), mask

    def log_prob_states(self, states: Tensor, temperature: float = 1.0) -> Tensor:
        """float64 ``(B,)`` log-probability of full determinants given as states; -inf if invalid."""
        logp, mask = self.conditional_log_probs(states, temperature)
        picked = logp.gather(-1, states[..., None])[..., 0]
        allowed = mask.gather(-1, states[..., None])[..., 0].all(-1)
        return picked.sum(-1).masked_fill(~allowed, float("-inf"))

    @torch.no_grad()
    def log_prob(self, alpha: np.ndarray, beta: np.ndarray, temperature: float = 1.0, chunk: int = 8192) -> np.ndarray:
        """log p(x) of determinants given as paired uint64 CI strings (float64, -inf if invalid).

        With ``temperature`` it is the log-probability under the tempered sampler
        (each conditional is ``softmax(logits / T)`` over the allowed states).
        """
        states = states_from_strings(alpha, beta, self.config.norb)
        out = [
            self.log_prob_states(states[i : i + chunk].to(self.device), temperature).cpu()
            for i in range(0, len(states), chunk)
        ]
        return torch.cat(out).numpy() if out else np.zeros(0)


def build_model(config: NQSConfig, seed: int) -> AutoregressiveNQS:
    """A model with weights drawn on the CPU from ``seed`` (same weights whatever the device).

    GPT-style initialisation: normal(0, 0.02) for matrices and embeddings, residual
    projections scaled by 1/sqrt(2 n_layers), zero biases, unit layer norms. The output head
    is scaled down 10x so that a fresh model starts near the uniform choice among allowed
    states, which spreads the first samples widely.
    """
    model = AutoregressiveNQS(config)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif ".ln" in name or name.startswith("ln_"):
                param.fill_(1.0)
            else:
                std = residual_std if name.endswith(("proj.weight", "out.weight")) else 0.02
                if name.startswith("head"):
                    std = 0.002
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model
