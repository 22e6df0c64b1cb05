# Summaries, plots and the scan once the iterations stopped; captions for --report.


rule summarize:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
        status=lambda w: [str(files(w.system, k).status) for k in range(1, n_iterations(w.system) + 1)],
        pt2=lambda w: [str(files(w.system, k).pt2) for k in range(1, n_iterations(w.system) + 1)],
    output:
        summary=str(SYS.summary),
        table=report(
            str(SYS.energies_csv),
            caption="../report/energies.rst",
            category="Energies",
            subcategory="{system}",
        ),
        plot=report(
            str(SYS.convergence_png),
            caption="../report/convergence.rst",
            category="Convergence",
            subcategory="{system}",
        ),
    params:
        n=lambda w, input: len(input.status),
        dir=lambda w: sysdir(w.system),
        reference=lambda w: reference_options(config, w.system),
    log:
        str(SYS.log("summarize")),
    shell:
        "hinqs summarize {params.dir} --iterations {params.n} {params.reference} > {log} 2>&1"


rule scan:
    conda:
        HINQS_ENV
    input:
        summaries=expand(str(SYS.summary), system=SYSTEMS),
    output:
        table=report(str(RESULTS.scan_csv), caption="../report/scan.rst", category="Scan"),
        plot=report(str(RESULTS.scan_png), caption="../report/scan.rst", category="Scan"),
    params:
        config=RUN_CONFIG,
    log:
        str(RESULTS.scan_log),
    shell:
        "hinqs scan --config {params.config} {input.summaries} --csv {output.table}"
        " --png {output.plot} > {log} 2>&1"
