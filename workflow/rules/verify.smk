# `snakemake verify`: each system's loop run sequentially and in parallel with one seed,
# compared quantity by quantity (not part of `all`; request it by name).
from hinqs.loop.workflow_support import verify_launcher


rule verify_system:
    conda:
        HINQS_ENV
    output:
        report=str(RESULTS.verify("{system}") / "report.json"),
        table=report(
            str(RESULTS.verify("{system}") / "report.txt"),
            caption="../report/verify.rst",
            category="Verification",
            subcategory="{system}",
        ),
    params:
        config=RUN_CONFIG,
        out=lambda w: str(RESULTS.verify(w.system)),
        launch=verify_launcher(config["parallel"]),
    threads: diagonalize_threads(config["parallel"])
    log:
        str(SYS.log("verify")),
    shell:
        "{params.launch} verify --config {params.config} --system {wildcards.system} --out {params.out} > {log} 2>&1"


rule verify:
    input:
        expand(str(RESULTS.verify("{system}") / "report.json"), system=SYSTEMS),
