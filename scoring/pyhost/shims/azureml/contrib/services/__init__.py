"""aksml compatibility shim for azureml.contrib.services (AMLRequest,
rawhttp, AMLResponse)."""
