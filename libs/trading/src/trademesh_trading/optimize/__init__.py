"""Parameter optimisation with out-of-sample validation: the search space from a strategy's
schema (`space`), walk-forward windows and the divergence rule (`walkforward`), the trial a worker
process runs (`trials`) and the Optuna study that drives them (`study`, which needs the
`optimize` extra: `trademesh-trading[optimize]`)."""
