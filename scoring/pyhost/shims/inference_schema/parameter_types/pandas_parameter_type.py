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
        if isinstance(input_data, pd.DataFrame):
            return input_data
        if self.orient == "records":
            if not isinstance(input_data, list):
                raise ValueError("Invalid input format: expected an array of records.")
            df = pd.DataFrame.from_records(input_data)
        else:
            import json
            import io
            df = pd.read_json(io.StringIO(json.dumps(input_data)), orient=self.orient)
        if self.apply_column_names and len(df.columns) == len(self.sample_input.columns):
            df.columns = self.sample_input.columns
        if self.enforce_shape and len(df.columns) != len(self.sample_input.columns):
            raise ValueError("Invalid input data frame: a data frame with {0} columns is expected; "
                             "input has {1} [shape {2}]".format(len(self.sample_input.columns), len(df.columns), df.shape))
        if self.enforce_column_type:
            types = {c: t for c, t in self.sample_input.dtypes.items() if c in df.columns}
            df = df.astype(types)
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
