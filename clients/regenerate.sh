#!/usr/bin/env bash
# Regenerate the OpenAPI snapshot (clients/openapi.json) and the Python client
# (clients/python) from the API's code. Needs the dev extra: pip install -e '.[dev]'.
#   clients/regenerate.sh          rewrite them in place
#   clients/regenerate.sh DIR      write them under DIR instead (the staleness test does)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
mkdir -p "$out"
python -m ledgerflow openapi --output "$out/openapi.json"
openapi-python-client generate \
  --path "$out/openapi.json" \
  --output-path "$out/python" \
  --overwrite \
  --meta uv \
  --config "$here/openapi-python-client.yaml"
