#!/usr/bin/env bash
# Downloads the public datasets hopgrad's readers and examples use, from their home pages, and verifies them.
# Nothing in hopgrad runs this; nothing downloads at run time. Needs curl, tar, sha256sum, md5sum.
#
#   scripts/fetch-data.sh [DEST [DATASET...]]   # DEST defaults to ../shared/data next to the repository;
#                                               # DATASET: mnist, cifar10, mil, deeprc (default: all four)
#   export HOPGRAD_DATA_DIR=DEST                 # where the tests and examples look for the data
#
# Layout written (the one in shared/data/README.md):
#   DEST/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   LeCun, Cortes, Burges
#   DEST/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin    Krizhevsky 2009
#   DEST/mil/{elephant,fox,tiger}_100x100_matlab.mat, musk{1,2}norm_matlab.mat   Andrews et al. 2002
#   DEST/deeprc_example/metadata.tsv, repertoires/rep_*.tsv       Widrich et al. 2020 (ml-jku/DeepRC)
#
# Checksums: scripts/data.sha256 holds the sha256 of every file in shared/data (computed from those copies);
# scripts/data.md5 holds the publishers' md5 for the two files shared/data lacks (MNIST training images and the
# CIFAR-10 archive), for which no sha256 was verified here. Musk2 is not in shared/data, so it is downloaded
# unverified and the script says so.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-$here/../../shared/data}"
[ $# -eq 0 ] || shift
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(mnist cifar10 mil deeprc)
for d in "${datasets[@]}"; do
  case "$d" in
    mnist | cifar10 | mil | deeprc) ;;
    *) echo "error: unknown dataset '$d', expected mnist, cifar10, mil or deeprc" >&2; exit 2 ;;
  esac
done
wanted() { [[ " ${datasets[*]} " == *" $1 "* ]]; }
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() {  # fetch URL... OUT: tries each URL in turn (the home page first, then known mirrors of the same file)
  local out="${!#}" url
  [ -s "$out" ] && { echo "have   $out"; return 0; }
  mkdir -p "$(dirname "$out")"
  for url in "${@:1:$#-1}"; do
    echo "fetch  $url"
    if curl -fL --retry 3 --connect-timeout 20 -o "$out.part" "$url"; then
      mv "$out.part" "$out"
      return 0
    fi
  done
  rm -f "$out.part"
  echo "error: could not download $out" >&2
  return 1
}

verify() {  # verify ALGO LIST FILE...: checks each FILE (relative to $dest, as ./path) against its line in LIST
  local algo="$1" list="$2" file line
  shift 2
  for file in "$@"; do
    # A file that is not there is an error, never "unverified": a download step that skipped it must not pass.
    [ -s "$dest/$file" ] || { echo "error: missing $dest/$file" >&2; exit 1; }
    line="$(grep -F "  ./$file" "$list" || true)"
    if [ -z "$line" ]; then
      echo "unverified $file (no published checksum)"
      continue
    fi
    (cd "$dest" && echo "$line" | "${algo}sum" --quiet -c -) || { echo "error: $algo mismatch for $file" >&2; exit 1; }
    echo "ok     $file ($algo)"
  done
}

# ---- MNIST ---------------------------------------------------------------------------------------
if wanted mnist; then
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    fetch "http://yann.lecun.com/exdb/mnist/$f" "https://ossci-datasets.s3.amazonaws.com/mnist/$f" "$dest/mnist/$f"
  done
  verify sha256 "$here/data.sha256" mnist/train-labels-idx1-ubyte.gz mnist/t10k-images-idx3-ubyte.gz \
    mnist/t10k-labels-idx1-ubyte.gz
  verify md5 "$here/data.md5" mnist/train-images-idx3-ubyte.gz
fi

# ---- CIFAR-10 (binary version) --------------------------------------------------------------------
if wanted cifar10 && [ ! -s "$dest/cifar-10-batches-bin/test_batch.bin" ]; then
  fetch "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" "$dest/cifar-10-binary.tar.gz"
  verify md5 "$here/data.md5" cifar-10-binary.tar.gz
  tar -xzf "$dest/cifar-10-binary.tar.gz" -C "$dest"
  rm "$dest/cifar-10-binary.tar.gz"
fi

# ---- MIL benchmarks (Andrews et al. 2002) ---------------------------------------------------------
if wanted mil; then
  mil=(elephant_100x100_matlab.mat fox_100x100_matlab.mat tiger_100x100_matlab.mat musk1norm_matlab.mat
       musk2norm_matlab.mat)
  # One archive holds all five; it is fetched when any of them is missing (shared/data lacks only musk2), and only
  # the missing ones are copied out of it.
  missing=()
  for f in "${mil[@]}"; do
    [ -s "$dest/mil/$f" ] || missing+=("$f")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    fetch "http://www.cs.columbia.edu/~andrews/mil/data/MIL-Data-2002-Musk-Corel-Trec9-MATLAB.tgz" "$tmp/mil.tgz"
    tar -xzf "$tmp/mil.tgz" -C "$tmp"
    mkdir -p "$dest/mil"
    for f in "${missing[@]}"; do
      src="$(find "$tmp" -name "$f" -print -quit)"
      [ -n "$src" ] || { echo "error: $f is not in the MIL archive" >&2; exit 1; }
      cp "$src" "$dest/mil/$f"
    done
  fi
  verify sha256 "$here/data.sha256" "${mil[@]/#/mil/}"
fi

# ---- DeepRC example dataset (ml-jku/DeepRC, the commit shared/data was taken from) -------------------
if wanted deeprc; then
  deeprc="https://raw.githubusercontent.com/ml-jku/DeepRC/108d08d8cf2d2d69eb3f6caef1aa04d624dec871/deeprc/datasets/example_dataset"
  fetch "$deeprc/metadata.tsv" "$dest/deeprc_example/metadata.tsv"
  verify sha256 "$here/data.sha256" deeprc_example/metadata.tsv
  # The repertoire files are the metadata's ID column (no trailing newline on the last line).
  ids=()
  while IFS=$'\t' read -r id _ || [ -n "$id" ]; do
    [ "$id" = "ID" ] || ids+=("$id")
  done < "$dest/deeprc_example/metadata.tsv"
  for id in "${ids[@]}"; do
    fetch "$deeprc/repertoires/$id" "$dest/deeprc_example/repertoires/$id"
  done
  verify sha256 "$here/data.sha256" "${ids[@]/#/deeprc_example/repertoires/}"
fi

echo "done: export HOPGRAD_DATA_DIR=$dest"
