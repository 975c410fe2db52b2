"""aksml compatibility shim for azureml.monitoring (the azureml-monitoring
package of Azure ML SDK v1): ModelDataCollector."""

from azureml.monitoring.modeldatacollector import ModelDataCollector  # noqa: F401

__all__ = ["ModelDataCollector"]
