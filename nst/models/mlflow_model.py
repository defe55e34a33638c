"""The MLflow "model from code" of nst.models.serving: MLflow copies this file into a saved
model and runs it at load time, so loading needs no pickle (only an importable nst)."""

from mlflow.models import set_model

from nst.models.serving import StylizerModel

set_model(StylizerModel())
