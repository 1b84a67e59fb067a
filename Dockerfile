# syntax=docker/dockerfile:1
# The image cluster/kuberay-rayjob.yaml runs in every pod (REGISTRY/fracture-tune:<version>): the base image's
# Ray plus fracture-tune installed from its wheel, with pyproject.toml's pins. From the repository root:
#
#   docker build -t REGISTRY/fracture-tune:0.1.0 . && docker push REGISTRY/fracture-tune:0.1.0
#
# One image for the head, the CPU and the GPU workers: torch's Linux wheels from PyPI bundle CUDA, so the GPU
# group needs the node's NVIDIA driver (the device plugin mounts it), not a -gpu base image.
# RAY_VERSION: inside pyproject.toml's ray pin and equal to the RayJob's rayVersion; PYTHON: a version
# requires-python allows (tests/unit/test_dockerfile.py checks both, and the wheel's name and version).
ARG RAY_VERSION=2.60.0
ARG PYTHON=py311

# Stage 1: the wheel, built from the sources the way tests/integration/test_wheel.py builds it.
FROM rayproject/ray:${RAY_VERSION}-${PYTHON} AS wheel
COPY --chown=ray:users . /home/ray/src
RUN pip wheel --no-deps --no-cache-dir --wheel-dir /home/ray/dist /home/ray/src

# Stage 2: the wheel and its dependencies on a clean base; no sources, no build output, no wheel file left.
FROM rayproject/ray:${RAY_VERSION}-${PYTHON}
ARG RAY_VERSION
ARG FRACTURE_TUNE_VERSION=0.1.0
# ray==RAY_VERSION keeps the base image's Ray: pip fails here rather than swap it for another release.
RUN --mount=type=bind,from=wheel,source=/home/ray/dist,target=/tmp/dist \
    pip install --no-cache-dir "/tmp/dist/fracture_tune-${FRACTURE_TUNE_VERSION}-py3-none-any.whl" \
        "ray[tune,default,client]==${RAY_VERSION}" \
    && fracture-tune --version
# KubeRay sets each pod's command (`ray start`, `ray job submit -- fracture-tune search ...`), which replaces
# this; `docker run IMAGE` alone lists the subcommands, `docker run IMAGE fracture-tune demo` runs one.
CMD ["fracture-tune", "--help"]
