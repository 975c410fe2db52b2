"""Base class of the parameter types (shim)."""


class AbstractParameterType(object):
    """A sample value that defines a type: its swagger schema and how JSON input
    is converted to it."""

    def __init__(self, sample_input):
        self.sample_input = sample_input
        self.sample_data_type = type(sample_input)

    def deserialize_input(self, input_data):
        """Convert parsed JSON to the sample's type."""
        raise NotImplementedError

    def input_to_swagger(self):
        """The swagger schema of the sample, with an example."""
        raise NotImplementedError

    @staticmethod
    def _jsonable(value):
        tolist = getattr(value, "tolist", None)
        if tolist is not None:
            return tolist()
        if isinstance(value, (bytes, bytearray)):
            import base64
            return base64.b64encode(value).decode("ascii")
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value
