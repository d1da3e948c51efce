"""The prepare job: options in (command line, config file), inputs planned, the pipeline built and run.

    python -m pipelines.prepare --input data/*.csv --output out/ [options] [Beam pipeline options]
"""
