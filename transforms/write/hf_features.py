"""Arrow schema -> Hugging Face `datasets` features, so `datasets` decodes what our columns hold (a `blob`
as an image) without any code of ours. Written without importing `datasets` (a test dependency only):
tests pin both forms against `datasets.Features`.

- `features(schema)`: the JSON form (`Features.to_dict()`), kept in a Parquet file's schema metadata under
  METADATA_KEY, as `datasets` writes it.
- `yaml_features(schema)`: the same features in a dataset card's `dataset_info` (`Features._to_yaml_list()`).
"""
import pyarrow as pa

METADATA_KEY = b"huggingface"
IMAGE_FIELDS = frozenset({"blob"})  # binary fields holding an image file's bytes (documents and chunks)
# Arrow type names that `datasets` spells otherwise (`datasets.features.features._arrow_to_datasets_dtype`).
_DTYPES = {"double": "float64", "float": "float32", "halffloat": "float16"}


def features(schema: pa.Schema) -> dict:
    """An Arrow schema -> {column: feature} in `datasets`' JSON form."""
    return {field.name: _feature(field) for field in schema}


def yaml_features(schema: pa.Schema) -> list:
    """An Arrow schema -> its features as a dataset card lists them: [{name, dtype | list | struct}, ...]."""
    return [{"name": name, **_yaml(feature)} for name, feature in features(schema).items()]


def _feature(field: pa.Field) -> dict:
    kind = field.type
    if field.name in IMAGE_FIELDS and pa.types.is_binary(kind):
        return {"_type": "Image"}
    if pa.types.is_struct(kind):
        return {child.name: _feature(child) for child in kind}
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind):
        length = {"length": kind.list_size} if pa.types.is_fixed_size_list(kind) else {}
        name = "LargeList" if pa.types.is_large_list(kind) else "List"
        return {"feature": _feature(kind.value_field), **length, "_type": name}
    return {"dtype": _DTYPES.get(str(kind), str(kind)), "_type": "Value"}


def _yaml(feature: dict) -> dict:
    """One feature in JSON form -> its card form: a value is its dtype, an image `dtype: image`, a list of
    one dtype (or of a struct's fields) names them directly."""
    kind = feature.get("_type")
    if kind == "Value":
        return {"dtype": feature["dtype"]}
    if kind in ("List", "LargeList"):
        inner = _yaml(feature["feature"])
        if (list(inner) == ["dtype"] and isinstance(inner["dtype"], str)) or list(inner) == ["struct"]:
            inner = next(iter(inner.values()))
        key = "large_list" if kind == "LargeList" else "list"
        return {key: inner, **({"length": feature["length"]} if "length" in feature else {})}
    if kind is None:
        return {"struct": [{"name": name, **_yaml(child)} for name, child in feature.items()]}
    return {"dtype": kind.lower()}
