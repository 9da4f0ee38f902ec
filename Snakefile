# Heavy-tailed diffusion for weather generation:
# ERA5-style data -> t-EDM, t-Flow and Gaussian baselines -> ensembles -> tail metrics -> report.
#
#   snakemake --cores all               # local run on the embedded default (config/config.yaml)
#   snakemake --profile cluster         # SLURM, GPU jobs for training and sampling
#
# The science lives in src/htweather; the rules in workflow/rules only call it.

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
if DOWNSCALING:  # coarse fields in, fine ensembles out, scored against the paired truth

    include: "workflow/rules/downscale.smk"

else:

    include: "workflow/rules/sample.smk"
    include: "workflow/rules/evaluate.smk"
    include: "workflow/rules/report.smk"


# The default target lives here: Snakemake takes it from the main Snakefile only.
rule all:
    input:
        "results/report.html",
        "results/evaluation/metrics.csv",
        "results/evaluation/comparisons.csv",
        "results/provenance.json",
        AA_CHECK_TABLES,
