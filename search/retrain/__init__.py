"""The search's final job: retrain the chosen configuration, test it once, report, log and register it."""
