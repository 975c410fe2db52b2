"""aksml compatibility shim for azureml.contrib."""
