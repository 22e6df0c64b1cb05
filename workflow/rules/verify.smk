# `snakemake verify`: each system's loop run sequentially and in parallel with one seed,
# compared quantity by quantity (not part of `all`; request it by name).


rule verify_system:
    conda:
        HINQS_ENV
    output:
        report=f"{RESULTS}/verify/{{system}}/report.json",
        table=report(
            f"{RESULTS}/verify/{{system}}/report.txt",
            caption="../report/verify.rst",
            category="Verification",
            subcategory="{system}",
        ),
    params:
        config=RUN_CONFIG,
        out=lambda w: f"{RESULTS}/verify/{w.system}",
    threads: diagonalize_threads(config["parallel"])
    log:
        f"{RESULTS}/{{system}}/logs/verify.log",
    shell:
        "hinqs verify {params.config} --system {wildcards.system} --out {params.out} > {log} 2>&1"


rule verify:
    input:
        expand(f"{RESULTS}/verify/{{system}}/report.json", system=SYSTEMS),
