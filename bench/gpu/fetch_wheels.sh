#!/usr/bin/env bash
# Download, on a machine with network, the cp312 x86-64 wheels that a bare H200/H100 image lacks
# (../shared/gpu/README.md lists them; ml-dtypes gives CuPy a bfloat16 dtype; typing-extensions because
# pydantic 2.12 needs >= 4.14.1 and the image's may be older) into .whl/, which git ignores and the
# device run carries. bench/gpu/preflight.py reports what is installed and whether the requirements hold.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64)
for spec in "pydantic==2.12.5" "pydantic-core==2.41.5" "annotated-types==0.7.0" "typing-inspection==0.4.2" \
            "simpy==4.1.1" "nvmath-python==1.0.0" "ml-dtypes==0.6.0" "typing-extensions==4.15.0"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .whl "$spec"
done
ls -1 .whl
