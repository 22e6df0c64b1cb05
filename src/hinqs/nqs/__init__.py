"""The neural quantum state: an autoregressive transformer over spatial orbitals.

Modules, each small (they import torch, so command lines import them inside ``run``):

- :mod:`hinqs.nqs.model`: the model, its electron-number mask and exact ``log_prob``;
- :mod:`hinqs.nqs.sampler`: unique-sample batched sampling with a key/value cache;
- :mod:`hinqs.nqs.teacher`: the SQD ground state turned into a target distribution;
- :mod:`hinqs.nqs.trainer`: cross-entropy / KL training with Adam, collapse diagnostics;
- :mod:`hinqs.nqs.checkpoint`: model + optimiser + random state in one atomic file;
- :mod:`hinqs.nqs.device`: ``auto|cpu|cuda`` and the determinism switches;
- :mod:`hinqs.nqs.exact`: enumeration of every determinant for small systems;
- :mod:`hinqs.nqs.settings`: the ``nqs`` config section with defaults for newer keys.

The loop in-process (what a ``verify`` command can run)::

    from hinqs.nqs import checkpoint, sampler, teacher, trainer

    state = checkpoint.init_checkpoint(norb, nelec, config["nqs"], seed=config["seed"], system="LiH")
    for k in range(1, n_iterations + 1):
        samples = sampler.sample_for_iteration(state.model, n_samples, state.seed, k, temperature, max_batch)
        ...  # subspace + SQD on samples.alpha, samples.beta -> state.npz
        target = teacher.read_teacher("state.npz", norb=norb, nelec=nelec, max_determinants=4096, min_weight=1e-12)
        report = trainer.train(state, target, k, 100, smoothing=0.01, batch_size=256)
        checkpoint.save_checkpoint(state, f"iter_{k}/model.pt")
"""
