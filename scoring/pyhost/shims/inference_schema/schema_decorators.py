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
                    v = kwargs[param_name]
                    if not isinstance(v, param_type.sample_data_type):
                        kwargs[param_name] = param_type.deserialize_input(v)
                else:
                    if param_name not in arg_names:
                        raise Exception('Error, provided param_name "{}" is not in the decorated function.'.format(param_name))
                    pos = arg_names.index(param_name)
                    if pos < len(args) and not isinstance(args[pos], param_type.sample_data_type):
                        args = list(args)
                        args[pos] = param_type.deserialize_input(args[pos])
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
