"""Local and remote Ray clusters, job submission, and an MLflow tracking server."""
