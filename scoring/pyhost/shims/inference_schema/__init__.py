"""aksml compatibility shim for the inference-schema package (used only when
the real package is not installed): the input_schema/output_schema decorators
and the parameter types, converting input as the real decorators do and
feeding the replica's /swagger.json."""
