"""Data layer: ingest and validate image folders, leak-safe splits, the decoded-image cache,
batched augmentation and the synthetic radiograph generator. Never imports ray, optuna or mlflow."""
