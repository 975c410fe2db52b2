"""numpy dtype -> swagger type (shim)."""

_SIMPLE = {
    "int8": {"type": "integer", "format": "int8"},
    "int16": {"type": "integer", "format": "int16"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "uint8": {"type": "integer", "format": "uint8"},
    "uint16": {"type": "integer", "format": "uint16"},
    "uint32": {"type": "integer", "format": "uint32"},
    "uint64": {"type": "integer", "format": "uint64"},
    "bool": {"type": "boolean"},
    "float16": {"type": "number", "format": "float"},
    "float32": {"type": "number", "format": "float"},
    "float64": {"type": "number", "format": "double"},
    "object": {"type": "object"},
}


def dtype_to_swagger(dtype):
    if dtype.names:
        return {"type": "object", "properties": {n: dtype_to_swagger(dtype[n]) for n in dtype.names}}
    if dtype.subdtype is not None:
        return array_of(dtype_to_swagger(dtype.subdtype[0]), dtype.subdtype[1])
    name = dtype.name.lower()
    if name in _SIMPLE:
        return dict(_SIMPLE[name])
    if name.startswith("datetime"):
        return {"type": "string", "format": "date-time"}
    if name.startswith("timedelta"):
        return {"type": "string", "format": "timedelta"}
    if name.startswith("str"):
        return {"type": "string"}
    if name.startswith("bytes") or name.startswith("void"):
        return {"type": "string", "format": "binary"}
    raise TypeError("We currently do not support extracting schema from data of type {}".format(name))


def array_of(item, shape):
    s = {"type": "array", "items": item}
    for _ in range(len(shape) - 1):
        s = {"type": "array", "items": s}
    return s
