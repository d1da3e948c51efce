"""transforms.write.hf_features: the document columns as Hugging Face `datasets` features, in the JSON form
of a Parquet file's metadata and the YAML form of a dataset card, both exactly what `datasets` makes."""
import datasets
import pyarrow as pa

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from transforms.write.hf_features import features, yaml_features

CONTENT = {"text": datasets.Value("string"), "uri": datasets.Value("string"), "blob": datasets.Image(),
           "mime_type": datasets.Value("string"), "width": datasets.Value("int32"),
           "height": datasets.Value("int32"),
           "point_cloud": datasets.List(datasets.List(datasets.Value("float32"), length=3)),
           "point_cloud_from": datasets.Value("string")}
DOCUMENT_FEATURES = datasets.Features({
    "id": datasets.Value("string"), "label": datasets.Value("string"), "score": datasets.Value("float64"),
    "modality": datasets.Value("string"), **CONTENT,
    "chunks": datasets.List({"modality": datasets.Value("string"), **CONTENT}),
    "source_file": datasets.Value("string"), "source_row": datasets.Value("int64"),
    "split": datasets.Value("string"), "duplicate_group": datasets.Value("string")})


def test_documents_are_described_as_datasets_would_with_blobs_as_images():
    assert datasets.Features.from_dict(features(DOCUMENT_SCHEMA)) == DOCUMENT_FEATURES
    assert features(DOCUMENT_SCHEMA) == DOCUMENT_FEATURES.to_dict()


def test_the_card_form_is_the_one_datasets_writes_and_reads_back():
    assert yaml_features(DOCUMENT_SCHEMA) == DOCUMENT_FEATURES._to_yaml_list()
    assert datasets.Features._from_yaml_list(yaml_features(DOCUMENT_SCHEMA)) == DOCUMENT_FEATURES


def test_columns_without_images_are_their_arrow_types():
    assert datasets.Features.from_dict(features(DEAD_LETTER_SCHEMA)) == datasets.Features.from_arrow_schema(
        DEAD_LETTER_SCHEMA)
    schema = pa.schema([("tags", pa.large_list(pa.string())), ("blob", pa.list_(pa.float16())),
                        ("nested", pa.struct([("a", pa.float64()), ("b", pa.list_(pa.bool_()))]))])
    assert datasets.Features.from_dict(features(schema)) == datasets.Features.from_arrow_schema(schema)
    assert datasets.Features._from_yaml_list(yaml_features(schema)) == datasets.Features.from_arrow_schema(schema)
