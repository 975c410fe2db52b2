"""NumpyParameterType (shim; needs numpy, like the real one)."""

import numpy as np

from .abstract_parameter_type import AbstractParameterType
from ._swagger_from_dtype import dtype_to_swagger, array_of


class NumpyParameterType(AbstractParameterType):
    """A numpy array parameter: input is converted with the sample's dtype and
    its shape is checked (all dimensions but the first)."""

    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True):
        if not isinstance(sample_input, np.ndarray):
            raise Exception("Invalid sample input provided, must provide a sample Numpy array.")
        super(NumpyParameterType, self).__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape

    def deserialize_input(self, input_data):
        if isinstance(input_data, np.ndarray):
            return input_data
        if not isinstance(input_data, list):
            raise ValueError("Invalid input format: expected an array of items.")
        dtype = self.sample_input.dtype
        if self.enforce_column_type:
            if dtype.names:
                input_data = [tuple(row[n] for n in dtype.names) if isinstance(row, dict) else tuple(row)
                              for row in input_data]
            arr = np.array(input_data, dtype=dtype)
        else:
            arr = np.array(input_data)
        if self.enforce_shape:
            expected = self.sample_input.shape
            got = arr.shape
            if len(got) != len(expected):
                raise ValueError("Invalid input array: an array with {0} dimensions is expected; "
                                 "input has {1} [shape {2}]".format(len(expected), len(got), got))
            for dim in range(1, len(expected)):
                if got[dim] != expected[dim]:
                    raise ValueError("Invalid input array: array has size {0} on dimension #{1}, "
                                     "while expected value is {2}".format(got[dim], dim, expected[dim]))
        return arr

    def input_to_swagger(self):
        dtype = self.sample_input.dtype
        schema = array_of(dtype_to_swagger(dtype), self.sample_input.shape)
        if dtype.names:
            example = [{n: self._jsonable(row[n]) for n in dtype.names} for row in self.sample_input]
        else:
            example = self._jsonable(self.sample_input)
        schema["example"] = example
        schema["format"] = "numpy.ndarray"
        return schema
