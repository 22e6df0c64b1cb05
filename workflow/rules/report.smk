# Summaries, plots and the scan once the iterations stopped; captions for --report.


rule summarize:
    conda:
        HINQS_ENV
    input:
        meta=rules.prepare.output.meta,
        # pt2_001, pt2_002...: each PT2 is asked for once its iteration is known to run, so it
        # runs beside the next iteration (hinqs.loop.workflow_support.per_iteration_inputs).
        **per_iteration_inputs("pt2", MAX_ITER, status_of, lambda system, k: str(files(system, k).pt2)),
        # Last: Snakemake takes a job's "waits for a checkpoint" flag from its last input function.
        status=lambda w: [str(files(w.system, k).status) for k in range(1, n_iterations(w.system) + 1)],
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
