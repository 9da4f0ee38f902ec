"""Stage 5, evaluation: how far the generated data are from the test data, with intervals.

- `tails`: do an ensemble's tails match the data's (kurtosis, skewness, KS, tail KS,
  exceedance ratios, quantile errors)? The `evaluate` step.
- `bootstrap`: moving-block bootstrap intervals;
- `scores`: proper scores (CRPS), rank histograms, spread/skill, Brier, area weights;
- `forecasts`: are the forecasts skilful and calibrated? The `verify_forecasts` step.
- `gev`: block maxima and GEV return levels; `extremes`: return levels and quantile maps of
  the data, the forecast models' sequences and the true process.
- `ranking`: which model is closest to perfect on a metric; `tables`: the tidy metrics table;
- `comparisons`: is a model closer to the data than its baseline, with an interval over its
  replicates (training runs), ensemble sampling and the test data? The `comparisons` step.
"""
