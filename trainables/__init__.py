"""Models, the Ray-free training engine and the one Ray Tune adapter."""
