"""``fracture_tune.search.classifier.pyfunc_model``: the served pyfunc under the path older models import."""

from fracture_tune.classifier.pyfunc_model import FractureClassifierModel

__all__ = ["FractureClassifierModel"]
