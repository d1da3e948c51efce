"""schemas.options: every invalid option stops the run with one sentence that names the value."""
import pytest

from schemas.options import ConfigError, CSVOptions, MediaOptions, OutputOptions, ReadTuning, work_units


def sentence(make) -> str:
    """The ConfigError message of make(); checks it is one sentence on one line."""
    with pytest.raises(ConfigError) as caught:
        make()
    message = str(caught.value)
    assert "\n" not in message and message.endswith((".", "?")), message
    return message


@pytest.mark.parametrize("kwargs, named", [
    ({"dialect": "tsv"}, "--dialect 'tsv'"),
    ({"layout": "triplets"}, "--layout 'triplets'"),
    ({"encoding": "utf-99"}, "--encoding 'utf-99'"),
    ({"modalities": ("text", "video")}, "--modalities 'text,video'"),
    ({"modalities": ()}, "--modalities"),
    ({"size": 0}, "--size 0"),
    ({"sampling_rate": 0.0}, "--sampling-rate 0.0"),
    ({"sampling_rate": 1.5}, "--sampling-rate 1.5"),
    ({"score_scale": -5.0}, "--score-scale -5.0"),
    ({"score_scale": 5.0, "layout": "pairs"}, "--layout pairs"),
])
def test_csv_options_errors(kwargs, named):
    assert named in sentence(lambda: CSVOptions(**kwargs))


@pytest.mark.parametrize("kwargs, named", [
    ({"shard_rows": 0}, "--shard-rows 0"),
    ({"shard_bytes": 1023}, "--shard-bytes 1023"),
])
def test_output_options_errors(kwargs, named):
    assert named in sentence(lambda: OutputOptions("out", **kwargs))


@pytest.mark.parametrize("kwargs, named", [
    ({"point_cloud_size": 0}, "--point-cloud-size 0"),
    ({"min_points": -1}, "--min-points -1"),
    ({"max_bytes": 0}, "--max-media-bytes 0"),
    ({"timeout": 0}, "--fetch-timeout"),
    ({"retries": -1}, "--fetch-retries"),
    ({"concurrency": 0}, "--fetch-concurrency"),
    ({"image_size": 224, "image_box": (224, 224)}, "--image-size and --image-box"),
    ({"image_size": 0}, "--image-size 0"),
    ({"image_box": (0, 10)}, "--image-box (0, 10)"),
    ({"image_format": "gif"}, "--image-format 'gif'"),
    ({"image_quality": 101}, "--image-quality 101"),
    ({"max_image_pixels": 0}, "--max-image-pixels 0"),
    ({"decode_timeout": -1.0}, "--decode-timeout -1.0"),
    ({"decode_timeout": float("nan")}, "--decode-timeout nan"),
])
def test_media_options_errors(kwargs, named):
    assert named in sentence(lambda: MediaOptions(**kwargs))


def test_valid_edges_are_accepted():
    CSVOptions(sampling_rate=1.0, size=1, score_scale=5.0, layout="scores", modalities=("image", "text"),
               encoding="latin-1", dialect="excel-tab")
    CSVOptions(score_scale=5.0)  # auto may turn out to be scores
    OutputOptions("out", shard_rows=1, shard_bytes=1024)
    MediaOptions(retries=0, decode_timeout=0, image_quality=1, image_box=(1, 1), image_format="webp", min_points=0)


def test_config_error_is_a_value_error_and_options_are_frozen():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(AttributeError):
        CSVOptions().layout = "pairs"
    assert ReadTuning().range_bytes > ReadTuning().batch_rows > ReadTuning().media_batch_rows


def test_split_fractions_read_as_written_and_are_checked():
    from schemas.options import SplitOptions, split_fractions

    assert split_fractions("train=0.8, validation=0.1,test=0.1") == (("train", 0.8), ("validation", 0.1), ("test", 0.1))
    assert SplitOptions(split_fractions("a-1=0.5,b_2=0.5")).names == ("a-1", "b_2")
    for text, message in [("a=0.7,b=0.2", "add up to 0.9"), ("a=0.5,a=0.5", "names a split twice"),
                          ("x y=0.5,b=0.5", "only letters, digits"), ("a=1", "between 0 and 1"),
                          ("a", "NAME=FRACTION"), ("a=half,b=0.5", "NAME=FRACTION"),
                          ("val-set=0.5,val_set=0.5", "differ only in '-' and '_'")]:
        with pytest.raises(ConfigError, match=message):
            SplitOptions(split_fractions(text))
    with pytest.raises(ConfigError, match="--split-by 'row'"):
        SplitOptions((("a", 0.5), ("b", 0.5)), by="row")


def test_near_duplicate_options_are_checked():
    from schemas.options import DuplicateOptions

    assert DuplicateOptions() == DuplicateOptions(near=False, text_threshold=0.9, image_distance=4, drop=False)
    for options, message in [({"text_threshold": 0}, "--near-text-threshold 0 must be above 0"),
                             ({"text_threshold": 1.5}, "at most 1"), ({"image_distance": 17}, "between 0 and 16"),
                             ({"drop": True}, "--drop-near-duplicates needs --near-duplicates")]:
        with pytest.raises(ConfigError, match=message):
            DuplicateOptions(**options)


@pytest.mark.parametrize("total, units", [(0, 1), (1, 1), (100, 1), (101, 4), (300, 4), (400, 4), (401, 8),
                                          (1200, 12), (1201, 16)])
def test_work_units_are_one_or_a_multiple_of_four(total, units):
    """Pieces of at most about 100 bytes: one when all fits, else a multiple of 4, so that 2 or 4 workers
    that take a step's pieces in turn finish together."""
    assert work_units(total, 100) == units
