"""The classifier after the search: retrain, test evaluation, the model package, registry, predict, export."""
