"""A real, non-editable install ships every module: the wheel that `pip install .`, the Docker image and
Dataflow's --setup_file build holds each .py file of pipelines/, transforms/ and schemas/."""
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

PACKAGES = ("pipelines", "transforms", "schemas")


def test_the_wheel_holds_every_module(tmp_path):
    source = tmp_path / "source"  # a copy, so no build/ folder left by an earlier build can fill the gaps
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("finetune_etl-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    sources = {str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    assert sources - shipped == set()
    assert {"transforms/media/load_media.py", "pipelines/prepare/__main__.py"} <= shipped


def test_the_docker_image_checks_the_installed_package_from_outside_the_sources():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "cd / && python -c" in dockerfile
    assert all(f"COPY {package} ./{package}" in dockerfile for package in PACKAGES)
