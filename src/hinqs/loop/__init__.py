"""The HI-NQS-SQD loop itself: settings and size-derived defaults, the stop rule, the
in-process driver, ``hinqs verify`` and what the Snakefile needs beyond Snakemake.

The domain packages (chem, subspace, sqd, nqs) know nothing of the loop; this package
assembles them."""
