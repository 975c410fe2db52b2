"""StandardPythonParameterType (shim; standard library only)."""

import base64
import datetime

from .abstract_parameter_type import AbstractParameterType


class StandardPythonParameterType(AbstractParameterType):
    """A parameter of a standard Python type (int, float, str, bool, list,
    dict, bytes, date/time). A dict or list sample may nest other parameter
    types (kept in sample_data_type_map and sample_data_type_list); the
    input_schema decorator converts their values too, at any depth."""

    def __init__(self, sample_input):
        super(StandardPythonParameterType, self).__init__(sample_input)
        self.sample_data_type_map = {}
        self.sample_data_type_list = []
        if self.sample_data_type is dict:
            for k, v in sample_input.items():
                if isinstance(v, AbstractParameterType):
                    self.sample_data_type_map[k] = v
        elif self.sample_data_type in (list, tuple):
            for v in sample_input:
                if isinstance(v, AbstractParameterType):
                    self.sample_data_type_list.append(v)

    def deserialize_input(self, input_data):
        t = self.sample_data_type
        if t in (dict, list, tuple) and (self.sample_data_type_map or self.sample_data_type_list):
            from ..schema_decorators import _deserialize_input_argument
            return _deserialize_input_argument(input_data, self, "")
        if t is datetime.date:
            input_data = datetime.date.fromisoformat(input_data)
        elif t is datetime.datetime:
            input_data = datetime.datetime.fromisoformat(input_data.replace("Z", "+00:00"))
        elif t is datetime.time:
            input_data = datetime.time.fromisoformat(input_data)
        elif t is bytes or t is bytearray:
            input_data = t(base64.b64decode(input_data.encode("utf-8")))
        elif t is float and isinstance(input_data, int) and not isinstance(input_data, bool):
            input_data = float(input_data)
        elif t is tuple and isinstance(input_data, list):
            input_data = tuple(input_data)
        if not isinstance(input_data, t):
            raise ValueError("Invalid input data type to parse. Expected: {0} but got {1}".format(t, type(input_data)))
        return input_data

    def input_to_swagger(self):
        s = self.sample_input
        t = self.sample_data_type
        if s is None:
            raise ValueError("Python data cannot be None")
        if isinstance(s, dict) and any(isinstance(v, AbstractParameterType) for v in s.values()):
            props, example = {}, {}
            for k, v in s.items():
                sub = v.input_to_swagger() if isinstance(v, AbstractParameterType) else StandardPythonParameterType(v).input_to_swagger()
                example[k] = sub.pop("example", None)
                props[k] = sub
            return {"type": "object", "required": list(props.keys()), "properties": props, "example": example}
        if isinstance(s, (list, tuple)) and s and isinstance(s[0], AbstractParameterType):
            sub = s[0].input_to_swagger()
            ex = sub.pop("example", None)
            return {"type": "array", "items": sub, "example": [ex]}
        if t is bool:
            return {"type": "boolean", "example": s}
        if t is int:
            return {"type": "integer", "format": "int64", "example": s}
        if t is float:
            return {"type": "number", "format": "double", "example": s}
        if t is str:
            return {"type": "string", "example": s}
        if t is bytes or t is bytearray:
            return {"type": "string", "format": "byte", "example": base64.b64encode(s).decode("utf-8")}
        if t is datetime.datetime:
            return {"type": "string", "format": "date-time", "example": s.isoformat()}
        if t is datetime.date:
            return {"type": "string", "format": "date", "example": s.isoformat()}
        if t is datetime.time:
            return {"type": "string", "format": "time", "example": s.isoformat()}
        if t is range:
            return {"type": "array", "items": {"type": "integer", "format": "int64"}, "example": list(s)}
        if t is list or t is tuple:
            return {"type": "array", "items": {"type": "object"}, "example": list(s)}
        if t is dict:
            return {"type": "object", "additionalProperties": {"type": "object"}, "example": s}
        return {"type": "object", "example": s}
