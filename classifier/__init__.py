"""The trained classifier as a product: package, load, predict, evaluate, export, serving, registry."""
