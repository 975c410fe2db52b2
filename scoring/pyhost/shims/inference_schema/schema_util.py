"""Read back what the schema decorators recorded (shim of inference_schema.schema_util)."""

import copy

_ATTR = "_aksml_inference_schema"


def _schemas(func):
    s = getattr(func, _ATTR, None)
    return s if isinstance(s, dict) else None


def is_schema_decorated(func):
    """True when func carries an input or an output schema."""
    s = _schemas(func)
    return bool(s) and (s.get("input") is not None or s.get("output") is not None)


def get_input_schema(func):
    """The swagger schema of func's input: an object with one property per argument."""
    s = _schemas(func)
    return copy.deepcopy(s["input"]) if s and s.get("input") is not None else {}


def get_output_schema(func):
    """The swagger schema of func's return value."""
    s = _schemas(func)
    return copy.deepcopy(s["output"]) if s and s.get("output") is not None else {}


def get_supported_versions(func):
    """Swagger versions the schemas can be written in."""
    return ["2.0", "3.0", "3.1"]
