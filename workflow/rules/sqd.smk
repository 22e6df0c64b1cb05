# Cumulative determinant subspace, batched diagonalisation and the convergence checkpoint.
from hinqs.loop.workflow_support import (
    diagonalize_launcher,
    diagonalize_mem_mb,
    diagonalize_mem_per_cpu,
    diagonalize_threads,
    fixed_strings,
    pt2_launcher,
    pt2_mem_mb,
    pt2_mem_per_cpu,
)


rule subspace:
    conda:
        HINQS_ENV
    input:
        meta=hamiltonian_meta,
        samples=str(IT.samples),
        previous=lambda w: [str(files(w.system, int(w.k) - 1).subspace)] if int(w.k) > 1 else [],
        teacher=lambda w: [str(files(w.system, int(w.k) - 1).state)] if int(w.k) > 1 else [],
        status=lambda w: [str(files(w.system, int(w.k) - 1).status)] if int(w.k) > 1 else [],
    output:
        subspace=str(IT.subspace),
        stats=str(IT.subspace_stats),
    params:
        config=RUN_CONFIG,
        options=config["subspace"],
        ham=lambda w: hamiltonian_of(w.system, w.k),
        previous=lambda w, input: f"--previous-subspace {input.previous}" if input.previous else "",
        teacher=lambda w, input: f"--teacher {input.teacher}" if input.teacher else "",
        status=lambda w, input: f"--previous-status {input.status}" if input.status else "",
    log:
        str(SYS.log("subspace", "{k}")),
    benchmark:
        str(SYS.benchmark("subspace", "{k}"))
    shell:
        "hinqs subspace --config {params.config} --hamiltonian {params.ham} --samples {input.samples}"
        " {params.previous} {params.teacher} {params.status} --out {output.subspace} --stats {output.stats} > {log} 2>&1"


rule diagonalize:
    conda:
        HINQS_ENV
    input:
        meta=hamiltonian_meta,
        subspace=str(IT.subspace),
        teacher=lambda w: [str(files(w.system, int(w.k) - 1).state)] if int(w.k) > 1 else [],
    output:
        # Only the merged files are outputs: the per-batch files in sqd/batches survive a
        # killed job, so a rerun redoes only the unfinished batches.
        result=str(IT.result),
        state=str(IT.state),
    params:
        config=RUN_CONFIG,
        sqd=config["sqd"],
        parallel=config["parallel"],
        seed=config["seed"],
        iteration=lambda w: int(w.k),
        ham=lambda w: hamiltonian_of(w.system, w.k),
        out=lambda w: str(files(w.system, w.k).sqd),
        launch=diagonalize_launcher(config["parallel"]),
        teacher=lambda w, input: f"--teacher {input.teacher}" if input.teacher else "",
    threads: diagonalize_threads(config["parallel"])
    resources:
        mem_mb=diagonalize_mem_mb(config["sqd"], config["parallel"], fixed_strings(config)),
        # a batch spread over ranks (parallel.executor: distributed) asks per CPU, whatever
        # the nodes its ranks land on; 0 elsewhere (the plugin then asks mem_mb for the node)
        mem_mb_per_cpu=diagonalize_mem_per_cpu(config["sqd"], config["parallel"], fixed_strings(config)),
        gpu=SOLVE_GPUS,
    log:
        str(SYS.log("diagonalize", "{k}")),
    benchmark:
        str(SYS.benchmark("diagonalize", "{k}"))
    shell:
        "{params.launch} diagonalize --config {params.config} --hamiltonian {params.ham}"
        " --subspace {input.subspace} --iteration {params.iteration} {params.teacher} --out {params.out} > {log} 2>&1"


rule pt2:
    conda:
        HINQS_ENV
    input:
        meta=hamiltonian_meta,
        state=str(IT.state),
    output:
        pt2=str(IT.pt2),
    params:
        config=RUN_CONFIG,
        pt2=config["pt2"],
        ham=lambda w: hamiltonian_of(w.system, w.k),
        iteration=lambda w: int(w.k),
        launch=pt2_launcher(config["parallel"]),
    # the diagonalize step's cores: the PT2 follows it on the critical path (the check reads it);
    # over MPI ranks (parallel.executor: distributed) on the same ranks, each a share of the rows
    threads: diagonalize_threads(config["parallel"])
    resources:
        mem_mb=pt2_mem_mb(config["sqd"], config["parallel"], fixed_strings(config)),
        mem_mb_per_cpu=pt2_mem_per_cpu(config["sqd"], config["parallel"], fixed_strings(config)),
        gpu=PT2_GPUS,
    log:
        str(SYS.log("pt2", "{k}")),
    benchmark:
        str(SYS.benchmark("pt2", "{k}"))
    shell:
        "{params.launch} pt2 --config {params.config} --hamiltonian {params.ham} --state {input.state}"
        " --iteration {params.iteration} --threads {threads} --out {output.pt2} > {log} 2>&1"


# The stop rule reads the iteration's PT2 (its error estimate) and the system's size (to grow
# the string cap): hinqs.loop.convergence.
checkpoint check:
    conda:
        HINQS_ENV
    input:
        meta=hamiltonian_meta,
        result=str(IT.result),
        pt2=[str(IT.pt2)] if config["pt2"]["max_dimension"] > 0 else [],
        previous=lambda w: [str(files(w.system, int(w.k) - 1).status)] if int(w.k) > 1 else [],
    output:
        status=str(IT.status),
    params:
        config=RUN_CONFIG,
        iterations=config["iterations"],
        accuracy=config["accuracy"],
        max_strings=config["subspace"]["max_strings"],
        iteration=lambda w: int(w.k),
        ham=lambda w: hamiltonian_of(w.system, w.k),
        pt2=lambda w, input: f"--pt2 {input.pt2}" if input.pt2 else "",
        previous=lambda w, input: f"--previous-status {input.previous}" if input.previous else "",
    log:
        str(SYS.log("check", "{k}")),
    shell:
        "hinqs check --config {params.config} --iteration {params.iteration} --hamiltonian {params.ham}"
        " --result {input.result} {params.pt2} {params.previous} --out {output.status} > {log} 2>&1"
