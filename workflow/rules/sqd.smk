# Cumulative basis, batched diagonalisation and the convergence checkpoint.
from hinqs.workflow_support import diagonalize_launcher, diagonalize_mem_mb, diagonalize_threads


rule basis:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
        samples=f"{RESULTS}/{{system}}/iter_{{k}}/samples.npz",
        previous=lambda w: (
            [f"{iterdir(w.system, int(w.k) - 1)}/basis.npz"] if int(w.k) > 1 else []
        ),
        teacher=lambda w: (
            [f"{iterdir(w.system, int(w.k) - 1)}/sqd/state.npz"] if int(w.k) > 1 else []
        ),
    output:
        basis=f"{RESULTS}/{{system}}/iter_{{k}}/basis.npz",
    params:
        config=RUN_CONFIG,
        options=config["basis"],
        ham=lambda w: f"{sysdir(w.system)}/hamiltonian",
        previous=lambda w, input: f"--previous {input.previous}" if input.previous else "",
        teacher=lambda w, input: f"--teacher {input.teacher}" if input.teacher else "",
    log:
        f"{RESULTS}/{{system}}/logs/basis_{{k}}.log",
    shell:
        "hinqs basis --hamiltonian {params.ham} --samples {input.samples} {params.previous}"
        " --config {params.config} {params.teacher} --out {output.basis} > {log} 2>&1"


rule diagonalize:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
        basis=f"{RESULTS}/{{system}}/iter_{{k}}/basis.npz",
        teacher=lambda w: (
            [f"{iterdir(w.system, int(w.k) - 1)}/sqd/state.npz"] if int(w.k) > 1 else []
        ),
    output:
        # Only the merged files are outputs: the per-batch files in sqd/batches survive a
        # killed job, so a rerun redoes only the unfinished batches.
        result=f"{RESULTS}/{{system}}/iter_{{k}}/sqd/result.json",
        state=f"{RESULTS}/{{system}}/iter_{{k}}/sqd/state.npz",
    params:
        config=RUN_CONFIG,
        sqd=config["sqd"],
        parallel=config["parallel"],
        seed=config["seed"],
        iteration=lambda w: int(w.k),
        ham=lambda w: f"{sysdir(w.system)}/hamiltonian",
        out=lambda w: f"{iterdir(w.system, w.k)}/sqd",
        launch=diagonalize_launcher(config["parallel"]),
        teacher=lambda w, input: f"--teacher {input.teacher}" if input.teacher else "",
    threads: diagonalize_threads(config["parallel"])
    resources:
        mem_mb=diagonalize_mem_mb(config["sqd"], config["parallel"]),
    log:
        f"{RESULTS}/{{system}}/logs/diagonalize_{{k}}.log",
    benchmark:
        f"{RESULTS}/{{system}}/benchmarks/diagonalize_{{k}}.tsv"
    shell:
        "{params.launch} diagonalize --config {params.config} --hamiltonian {params.ham}"
        " --configs {input.basis} --iteration {params.iteration} {params.teacher} --out {params.out} > {log} 2>&1"


checkpoint check:
    conda:
        HINQS_ENV
    input:
        result=f"{RESULTS}/{{system}}/iter_{{k}}/sqd/result.json",
        previous=lambda w: (
            [f"{iterdir(w.system, int(w.k) - 1)}/status.json"] if int(w.k) > 1 else []
        ),
    output:
        status=f"{RESULTS}/{{system}}/iter_{{k}}/status.json",
    params:
        config=RUN_CONFIG,
        iterations=config["iterations"],
        iteration=lambda w: int(w.k),
        previous=lambda w, input: f"--previous {input.previous}" if input.previous else "",
    log:
        f"{RESULTS}/{{system}}/logs/check_{{k}}.log",
    shell:
        "hinqs check --config {params.config} --iteration {params.iteration}"
        " --result {input.result} {params.previous} --out {output.status} > {log} 2>&1"
