# Python 3.11 from Debian bookworm's python3, for machines without an image registry
# (build_local_images.sh). `python` and `pip` on PATH come from a venv, as in python:3.11-slim.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/python
ENV PATH=/opt/python/bin:$PATH
