"""input_schema and output_schema (shim of inference_schema.schema_decorators)."""

import copy
import functools
import inspect

from .parameter_types.abstract_parameter_type import AbstractParameterType
from .schema_util import _ATTR


def _base(func):
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    return func


def _carry(wrapper, func):
    s = getattr(func, _ATTR, None)
    s = copy.deepcopy(s) if isinstance(s, dict) else {"input": None, "output": None}
    setattr(wrapper, _ATTR, s)
    return s


def _deserialize_input_argument(input_data, param_type, param_name):
    """Convert parsed JSON to the declared type, recursing into the typed
    values a StandardPythonParameterType dict or list sample holds, as the
    real package does."""
    t = param_type.sample_data_type
    if t is dict:
        if not isinstance(input_data, dict):
            raise ValueError("Invalid input data type to parse. Expected: {0} but got {1}".format(t, type(input_data)))
        for k, v in getattr(param_type, "sample_data_type_map", {}).items():
            if k in input_data:
                input_data[k] = _deserialize_input_argument(input_data[k], v, k)
    elif t in (list, tuple):
        if not isinstance(input_data, (list, tuple)):
            raise ValueError("Invalid input data type to parse. Expected: {0} but got {1}".format(t, type(input_data)))
        items = getattr(param_type, "sample_data_type_list", [])
        if items:
            input_data = [_deserialize_input_argument(x, items[0], param_name) for x in input_data]
    elif not isinstance(input_data, t):
        input_data = param_type.deserialize_input(input_data)
    return input_data


def input_schema(param_name, param_type, convert_to_provided_type=True, optional=False):
    """Declare the schema of one argument of run(); with convert_to_provided_type
    the parsed JSON value is converted to the sample's type before run() sees it."""
    if not isinstance(param_type, AbstractParameterType):
        raise Exception("Error, provided param_type must be a subclass of the AbstractParameterType.")
    swagger = param_type.input_to_swagger()

    def decorate(func):
        arg_names = inspect.getfullargspec(_base(func)).args

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if convert_to_provided_type:
                if param_name in kwargs:
                    if not (optional and not kwargs[param_name]):
                        kwargs[param_name] = _deserialize_input_argument(kwargs[param_name], param_type, param_name)
                elif not optional:
                    if param_name not in arg_names:
                        raise Exception('Error, provided param_name "{}" is not in the decorated function.'.format(param_name))
                    pos = arg_names.index(param_name)
                    if pos < len(args):
                        args = list(args)
                        args[pos] = _deserialize_input_argument(args[pos], param_type, param_name)
            return func(*args, **kwargs)

        s = _carry(wrapper, func)
        if s["input"] is None:
            s["input"] = {"type": "object", "properties": {n: {} for n in arg_names}, "example": {n: "" for n in arg_names}}
        item = copy.deepcopy(swagger)
        s["input"]["example"][param_name] = item.pop("example", "")
        s["input"]["properties"][param_name] = item
        if not optional:
            req = s["input"].setdefault("required", [])
            if param_name not in req:
                req.append(param_name)
        return wrapper

    return decorate


def output_schema(output_type):
    """Declare the schema of run()'s return value (no conversion)."""
    if not isinstance(output_type, AbstractParameterType):
        raise Exception("Error, provided param_type must be a subclass of the AbstractParameterType.")
    swagger = output_type.input_to_swagger()

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)

        s = _carry(wrapper, func)
        if s["output"] is not None:
            raise Exception("Error, output schema already defined for function: {}.".format(func.__name__))
        s["output"] = copy.deepcopy(swagger)
        return wrapper

    return decorate
