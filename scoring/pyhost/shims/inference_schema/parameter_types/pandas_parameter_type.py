"""PandasParameterType (shim; needs pandas, like the real one)."""

import pandas as pd

from .abstract_parameter_type import AbstractParameterType
from ._swagger_from_dtype import dtype_to_swagger


class PandasParameterType(AbstractParameterType):
    """A pandas DataFrame parameter, sent as JSON records (orient='records') by default."""

    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True,
                 apply_column_names=False, orient="records"):
        if not isinstance(sample_input, pd.DataFrame):
            raise Exception("Invalid sample input provided, must provide a sample Pandas Dataframe.")
        super(PandasParameterType, self).__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape
        self.apply_column_names = apply_column_names
        self.orient = orient

    def deserialize_input(self, input_data):
        """Convert a JSON list or dict in the parameter's orient (records by
        default; a column-oriented dict is read as well) to a DataFrame, as
        the real package does with pandas.read_json."""
        if isinstance(input_data, pd.DataFrame):
            return input_data
        if not isinstance(input_data, (list, dict)):
            raise Exception("Error, unable to convert input of type {} into Pandas Dataframe".format(type(input_data)))
        import io
        import json
        df = pd.read_json(io.StringIO(json.dumps(input_data)), orient=self.orient)
        if self.apply_column_names:
            df.columns = self.sample_input.columns.copy()
        if self.enforce_column_type:
            sample_types = self.sample_input.dtypes.to_dict()
            types = {c: sample_types.get(c, object) for c in df.columns}
            for c, t in types.items():
                if str(t).startswith("timedelta"):
                    df[c] = pd.to_timedelta(df[c])
            df = df.astype(dtype=types)
        if self.enforce_shape:
            expected = self.sample_input.shape
            if len(df.shape) != len(expected):
                raise ValueError("Invalid input data frame: a data frame with {0} dimensions is expected; "
                                 "input has {1} [shape {2}]".format(len(expected), len(df.shape), df.shape))
            for dim in range(1, len(expected)):
                if df.shape[dim] != expected[dim]:
                    raise ValueError("Invalid input data frame: data frame has size {0} on dimension #{1}, "
                                     "while expected value is {2}".format(df.shape[dim], dim, expected[dim]))
        return df

    def input_to_swagger(self):
        props = {}
        for col, dt in self.sample_input.dtypes.items():
            try:
                props[str(col)] = dtype_to_swagger(dt)
            except TypeError:
                props[str(col)] = {"type": "object"}
        example = self.sample_input.to_dict(orient="records")
        example = [{str(k): self._jsonable(v) for k, v in row.items()} for row in example]
        return {
            "type": "array",
            "items": {"type": "object", "required": list(props.keys()), "properties": props},
            "format": "pandas.DataFrame:records",
            "example": example,
        }
