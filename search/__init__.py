"""Search layer: configs, search spaces, Tuner assembly, MLflow logging, results, retrain and the CLI."""
