# Worker image for Dataflow (--sdk_container_image) and Flink (--environment_type=DOCKER).
# The base image is Beam's own Python SDK image for the Beam version pinned in setup.py and the Python
# version we run on; its entrypoint (the Beam SDK harness boot) is kept as it is.
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/finetune-etl
COPY setup.py setup.cfg README.md ./
COPY schemas ./schemas
COPY transforms ./transforms
COPY pipelines ./pipelines
RUN pip install --no-cache-dir . && python -c "import pipelines, transforms, schemas"
