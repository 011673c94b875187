#!/usr/bin/env bash
# Optional: build KenLM's lmplz and build_binary from the kenlm source package (for large
# corpora; `curate lm train` uses lmplz when it is on PATH, else its numpy estimator).
# Needs cmake, g++ and Debian's boost -dev packages; about 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ zlib1g-dev libbz2-dev liblzma-dev \
    libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev >/dev/null
fi
mkdir -p build/kenlm
"$VENV/bin/pip" download -q kenlm==0.3.0 --no-binary :all: --no-deps --no-build-isolation -d build/kenlm
tar xzf build/kenlm/kenlm-0.3.0.tar.gz -C build/kenlm
cmake -S build/kenlm/kenlm-0.3.0 -B build/kenlm/build -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C build/kenlm/build -j"$(nproc)" lmplz build_binary
cp build/kenlm/build/bin/lmplz build/kenlm/build/bin/build_binary "$VENV/bin/"
echo "lmplz installed in $VENV/bin"
