# Worker image for Dataflow (--sdk_container_image) and Flink (--environment_type=DOCKER).
# The base image is Beam's own Python SDK image for the Beam version pinned in setup.py and the Python
# version we run on; its entrypoint (the Beam SDK harness boot) is kept as it is.
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/finetune-etl
COPY setup.py setup.cfg README.md ./
COPY schemas ./schemas
COPY transforms ./transforms
COPY pipelines ./pipelines
# Import from outside the source folder, so the check proves the installed package ships every sub-package.
RUN pip install --no-cache-dir . && cd / && python -c "import pipelines.prepare.build, pipelines.datasets.summary, \
    transforms.read.read_csv, transforms.media.load_media, transforms.write.formats, schemas.reasons"
