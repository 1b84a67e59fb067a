"""The file MLflow copies into the logged model and runs to load it ("models from code": no pickle).

``mlflow.pyfunc.load_model`` and ``mlflow models serve`` execute this file's copy; it hands MLflow the
pyfunc of ``pyfunc_model.py`` (which the installed fracture-tune provides). Nothing imports this module.
"""

from mlflow.models import set_model

from fracture_tune.classifier.pyfunc_model import FractureClassifierModel

set_model(FractureClassifierModel())
