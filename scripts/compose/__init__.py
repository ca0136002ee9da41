"""Compose mode's machinery: the Docker engine, the Compose CLI (v2 or v1), images and the wheelhouse.

The topology itself (``docker-compose.e2e.yml`` brought up, watched and torn down) lives in
``scripts.topology.compose``; this package gets a host ready to run it:

- ``engine``: is there an engine? start ``dockerd`` when not (and stop only what was started here);
  which Compose CLI to call; the Docker SDK client.
- ``images``: registry images, or local ones built without a registry (``build_local_images.sh``),
  and the wheelhouse of ``requirements.lock`` the app image installs offline.
- ``python -m scripts.compose ci``: what ``nox -s compose`` runs (``--help`` explains).
"""
