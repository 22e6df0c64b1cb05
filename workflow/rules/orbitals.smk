# natural_orbitals.after: the loop continues in the natural orbitals of that iteration's state.


rule natural_orbitals:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
        state=lambda w: str(files(w.system, NATURAL_AFTER).state),
    output:
        meta=str(SYS.natural_hamiltonian / "meta.json"),
        hcore=str(SYS.natural_hamiltonian / "hcore.npy"),
        eri=str(SYS.natural_hamiltonian / "eri.npy"),
    params:
        ham=lambda w: str(RESULTS.system(w.system).hamiltonian),
        out=lambda w: str(RESULTS.system(w.system).natural_hamiltonian),
        iteration=NATURAL_AFTER,
    log:
        str(SYS.log("natural_orbitals")),
    benchmark:
        str(SYS.benchmark("natural_orbitals"))
    shell:
        "hinqs natural-orbitals --hamiltonian {params.ham} --state {input.state} --iteration {params.iteration}"
        " --out {params.out} > {log} 2>&1"
