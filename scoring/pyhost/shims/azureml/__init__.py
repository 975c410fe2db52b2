"""aksml compatibility shim for the azureml namespace (used only when the real
azureml packages are not installed)."""
