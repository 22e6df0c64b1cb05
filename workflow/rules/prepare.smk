# Integrals and reference energies, once per system.


rule prepare:
    conda:
        HINQS_ENV
    input:
        # An FCIDUMP is an input, so an edited file reruns prepare and every step after it.
        fcidump=lambda w: fcidump_input(config, w.system),
    output:
        meta=str(SYS.meta),
        hcore=str(SYS.hamiltonian / "hcore.npy"),
        eri=str(SYS.hamiltonian / "eri.npy"),
    params:
        config=RUN_CONFIG,
        system=lambda w: prepare_inputs(config, w.system),
        references=config["references"],
        out=lambda w: str(RESULTS.system(w.system).hamiltonian),
    log:
        str(SYS.log("prepare")),
    benchmark:
        str(SYS.benchmark("prepare"))
    shell:
        "hinqs prepare --config {params.config} --system {wildcards.system} --out {params.out} > {log} 2>&1"
