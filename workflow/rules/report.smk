# Summaries, plots and the scan once the iterations stopped; captions for --report.


rule summarize:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
        status=lambda w: [
            f"{iterdir(w.system, k)}/status.json" for k in range(1, n_iterations(w.system) + 1)
        ],
    output:
        summary=f"{RESULTS}/{{system}}/summary.json",
        table=report(
            f"{RESULTS}/{{system}}/energies.csv",
            caption="../report/energies.rst",
            category="Energies",
            subcategory="{system}",
        ),
        plot=report(
            f"{RESULTS}/{{system}}/convergence.png",
            caption="../report/convergence.rst",
            category="Convergence",
            subcategory="{system}",
        ),
    params:
        n=lambda w, input: len(input.status),
        dir=lambda w: sysdir(w.system),
    log:
        f"{RESULTS}/{{system}}/logs/summarize.log",
    shell:
        "hinqs summarize {params.dir} --iterations {params.n} > {log} 2>&1"


rule scan:
    conda:
        HINQS_ENV
    input:
        summaries=expand(f"{RESULTS}/{{system}}/summary.json", system=SYSTEMS),
    output:
        table=report(f"{RESULTS}/scan.csv", caption="../report/scan.rst", category="Scan"),
        plot=report(f"{RESULTS}/scan.png", caption="../report/scan.rst", category="Scan"),
    params:
        config=RUN_CONFIG,
    log:
        f"{RESULTS}/logs/scan.log",
    shell:
        "hinqs scan --config {params.config} {input.summaries} --csv {output.table}"
        " --png {output.plot} > {log} 2>&1"
