"""aksml compatibility shim for azureml.core: only what entry scripts use at
scoring time (Model.get_model_path)."""
from .model import Model  # noqa: F401
