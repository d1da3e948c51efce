"""The tool's version and home page: in manifests, dataset cards and the fetcher's User-Agent."""
VERSION = "0.3.0"
PROJECT_URL = "https://github.com/finetune-etl/finetune-etl"
USER_AGENT = f"finetune-etl/{VERSION} (+{PROJECT_URL})"
