"""The module path that models logged by fracture-tune 0.1.0 load their pyfunc from.

A model logged to MLflow carries a copy of its loader (``classifier/pyfunc_entry.py``), and the copies
written by fracture-tune 0.1.0 import ``fracture_tune.search.classifier.pyfunc_model``. Only that name lives
here, so those models still load and serve; nothing in the package imports this module.
"""
