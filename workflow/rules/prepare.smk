# Integrals and reference energies, once per system.


rule prepare:
    conda:
        HINQS_ENV
    output:
        meta=f"{RESULTS}/{{system}}/hamiltonian/meta.json",
        hcore=f"{RESULTS}/{{system}}/hamiltonian/hcore.npy",
        eri=f"{RESULTS}/{{system}}/hamiltonian/eri.npy",
    params:
        config=RUN_CONFIG,
        system=lambda w: SYSTEM_BY_NAME[w.system],
        references=config["references"],
        out=lambda w: f"{sysdir(w.system)}/hamiltonian",
    log:
        f"{RESULTS}/{{system}}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/{{system}}/benchmarks/prepare.tsv"
    shell:
        "hinqs prepare {params.config} --system {wildcards.system} --out {params.out} > {log} 2>&1"
