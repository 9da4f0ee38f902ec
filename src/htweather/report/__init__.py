"""Stage 6, report: figures, provenance and the self-contained HTML page.

- `plots`: one function per figure; `figures`: which figure from which result;
- `provenance`: code, config, seeds, packages, timings; `page`: the HTML report.
"""
