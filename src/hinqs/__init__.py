"""hinqs: HI-NQS-SQD quantum chemistry as a batch workflow for HPC clusters."""

__version__ = "0.1.0"
