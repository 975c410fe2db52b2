"""aksml compatibility shim for azureml_inference_server_http.api."""
