#!/usr/bin/env bash
# Base images for docker-compose.e2e.yml on a machine that reaches Debian's mirror but no image
# registry: a Debian bookworm base (debootstrap minbase -> docker import), PostgreSQL from Debian's
# postgresql package (entrypoint honours POSTGRES_PASSWORD; pg_isready health check), and Python 3.11
# from Debian's python3. Idempotent: an image whose tag exists is kept (FORCE=1 rebuilds).
#
#   sudo scripts/compose/build_local_images.sh      # root: debootstrap and dockerd need it
#
# Prints the build arguments the compose file takes, e.g. for the compose topology:
#   POSTGRES_IMAGE=attribution-local/postgres:15-bookworm  PYTHON_BASE_IMAGE=attribution-local/python:3.11
# On a host with a registry none of this is needed: the compose file defaults to postgres:16 and
# python:3.11-slim.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${LOCAL_IMAGE_PREFIX:-attribution-local}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian="$prefix/debian:bookworm"
postgres="$prefix/postgres:15-bookworm"  # Debian bookworm packages PostgreSQL 15
python="$prefix/python:3.11"

have() { [[ ${FORCE:-0} != 1 ]] && docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$debian"; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "[compose-images] debootstrap minbase bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  chmod 0755 "$rootfs"  # mktemp made it 0700: as the image's /, no other user could reach anything
  tar -C "$rootfs" -c . | docker import - "$debian" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi
if ! have "$postgres"; then
  echo "[compose-images] $postgres" >&2
  docker build --quiet --network host --build-arg "BASE=$debian" -t "$postgres" \
    -f "$here/images/postgres.Dockerfile" "$here/images" >/dev/null
fi
if ! have "$python"; then
  echo "[compose-images] $python" >&2
  docker build --quiet --network host --build-arg "BASE=$debian" -t "$python" \
    -f "$here/images/python.Dockerfile" "$here/images" >/dev/null
fi
echo "POSTGRES_IMAGE=$postgres"
echo "PYTHON_BASE_IMAGE=$python"
