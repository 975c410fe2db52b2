"""aksml compatibility shim for azureml_inference_server_http.api.aml_request (the
same objects as azureml.contrib.services.aml_request)."""
from azureml.contrib.services.aml_request import *  # noqa: F401,F403
from azureml.contrib.services import aml_request as _impl

_rawHttpRequested = False


def rawhttp(func):
    """Decorator for run(): pass the raw HTTP request instead of the body."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


AMLRequest = _impl.AMLRequest
