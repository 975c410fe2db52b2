"""Parameter types (shim of inference_schema.parameter_types)."""
