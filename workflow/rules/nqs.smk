# The neural quantum state: initial model, sampling and training (GPU rules).


rule init_model:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
    output:
        model=str(SYS.iteration(0).model),
    params:
        config=RUN_CONFIG,
        nqs=config["nqs"],
        seed=config["seed"],
        ham=lambda w: str(RESULTS.system(w.system).hamiltonian),
    resources:
        gpu=USE_GPU,
        mem_mb=NQS_MEM_MB,
    log:
        str(SYS.log("init_model")),
    shell:
        "hinqs init-model --config {params.config} --system {wildcards.system}"
        " --hamiltonian {params.ham} --out {output.model} > {log} 2>&1"


rule sample:
    conda:
        HINQS_ENV
    input:
        meta=hamiltonian_meta,
        model=lambda w: str(files(w.system, int(w.k) - 1).model),
        known=lambda w: [str(files(w.system, int(w.k) - 1).subspace)] if int(w.k) > 1 else [],
    output:
        samples=str(IT.samples),
        stats=str(IT.sample_stats),
    params:
        config=RUN_CONFIG,
        nqs=config["nqs"],
        seed=config["seed"],
        iteration=lambda w: int(w.k),
        known=lambda w, input: f"--previous-subspace {input.known}" if input.known else "",
        ham=lambda w: hamiltonian_of(w.system, w.k),
    threads: 1
    resources:
        gpu=USE_GPU,
        mem_mb=NQS_MEM_MB,
    log:
        str(SYS.log("sample", "{k}")),
    benchmark:
        str(SYS.benchmark("sample", "{k}"))
    shell:
        "OMP_NUM_THREADS={threads} hinqs sample --config {params.config} --model {input.model}"
        " --hamiltonian {params.ham} --iteration {params.iteration} --out {output.samples}"
        " --stats {output.stats} {params.known}"
        " > {log} 2>&1"


rule train:
    conda:
        HINQS_ENV
    wildcard_constraints:
        k=r"(?!000)\d{3}",
    input:
        model=lambda w: str(files(w.system, int(w.k) - 1).model),
        teacher=str(IT.state),
        samples=str(IT.samples),
    output:
        model=str(IT.model),
        history=str(IT.train_history),
    params:
        config=RUN_CONFIG,
        nqs=config["nqs"],
        seed=config["seed"],
        iteration=lambda w: int(w.k),
        ham=lambda w: hamiltonian_of(w.system, w.k),
    threads: 1
    resources:
        gpu=USE_GPU,
        mem_mb=NQS_MEM_MB,
    log:
        str(SYS.log("train", "{k}")),
    benchmark:
        str(SYS.benchmark("train", "{k}"))
    shell:
        "OMP_NUM_THREADS={threads} hinqs train --config {params.config} --model {input.model}"
        " --hamiltonian {params.ham} --teacher {input.teacher} --previous-samples {input.samples}"
        " --iteration {params.iteration}"
        " --out {output.model} --history {output.history} > {log} 2>&1"
