"""aksml compatibility shim for azureml_inference_server_http.api.aml_response (the
same objects as azureml.contrib.services.aml_response)."""
from azureml.contrib.services.aml_response import *  # noqa: F401,F403
from azureml.contrib.services import aml_response as _impl

AMLResponse = _impl.AMLResponse
