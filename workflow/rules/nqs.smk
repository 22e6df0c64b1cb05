# The neural quantum state: initial model, sampling and training (GPU rules).


rule init_model:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
    output:
        model=f"{RESULTS}/{{system}}/iter_000/model.pt",
    params:
        config=RUN_CONFIG,
        nqs=config["nqs"],
        seed=config["seed"],
        ham=lambda w: f"{sysdir(w.system)}/hamiltonian",
    resources:
        gpu=USE_GPU,
        mem_mb=NQS_MEM_MB,
    log:
        f"{RESULTS}/{{system}}/logs/init_model.log",
    shell:
        "hinqs init-model --config {params.config} --system {wildcards.system}"
        " --hamiltonian {params.ham} --out {output.model} > {log} 2>&1"


rule sample:
    conda:
        HINQS_ENV
    input:
        model=lambda w: f"{iterdir(w.system, int(w.k) - 1)}/model.pt",
        known=lambda w: (
            [f"{iterdir(w.system, int(w.k) - 1)}/basis.npz"] if int(w.k) > 1 else []
        ),
    output:
        samples=f"{RESULTS}/{{system}}/iter_{{k}}/samples.npz",
        stats=f"{RESULTS}/{{system}}/iter_{{k}}/sample_stats.json",
    params:
        config=RUN_CONFIG,
        nqs=config["nqs"],
        seed=config["seed"],
        iteration=lambda w: int(w.k),
        known=lambda w, input: f"--known {input.known}" if input.known else "",
    threads: 1
    resources:
        gpu=USE_GPU,
        mem_mb=NQS_MEM_MB,
    log:
        f"{RESULTS}/{{system}}/logs/sample_{{k}}.log",
    benchmark:
        f"{RESULTS}/{{system}}/benchmarks/sample_{{k}}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} hinqs sample --config {params.config} --model {input.model}"
        " --iteration {params.iteration} --out {output.samples} --stats {output.stats} {params.known}"
        " > {log} 2>&1"


rule train:
    conda:
        HINQS_ENV
    wildcard_constraints:
        k=r"(?!000)\d{3}",
    input:
        model=lambda w: f"{iterdir(w.system, int(w.k) - 1)}/model.pt",
        teacher=f"{RESULTS}/{{system}}/iter_{{k}}/sqd/state.npz",
        samples=f"{RESULTS}/{{system}}/iter_{{k}}/samples.npz",
    output:
        model=f"{RESULTS}/{{system}}/iter_{{k}}/model.pt",
        history=f"{RESULTS}/{{system}}/iter_{{k}}/train.json",
    params:
        config=RUN_CONFIG,
        nqs=config["nqs"],
        seed=config["seed"],
        iteration=lambda w: int(w.k),
    threads: 1
    resources:
        gpu=USE_GPU,
        mem_mb=NQS_MEM_MB,
    log:
        f"{RESULTS}/{{system}}/logs/train_{{k}}.log",
    benchmark:
        f"{RESULTS}/{{system}}/benchmarks/train_{{k}}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} hinqs train --config {params.config} --model {input.model}"
        " --teacher {input.teacher} --previous-samples {input.samples} --iteration {params.iteration}"
        " --out {output.model} --history {output.history} > {log} 2>&1"
