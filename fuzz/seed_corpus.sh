#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with the seeds listed in fuzz/seeds.txt and the regression inputs of
# fuzz/regressions/<target>/. Run from anywhere; cargo fuzz then grows the corpus in place.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -v '^#' fuzz/seeds.txt | while read -r target dir suffix; do
  [ -n "$target" ] || continue
  mkdir -p "fuzz/corpus/$target"
  # Prefixed with the folder name: seeds of two folders may share a file name.
  find "$dir" -maxdepth 1 -type f -name "*$suffix" -size -64k | while read -r f; do
    cp "$f" "fuzz/corpus/$target/$(basename "$dir")_$(basename "$f")"
  done
  if [ -d "fuzz/regressions/$target" ]; then
    find "fuzz/regressions/$target" -maxdepth 1 -type f ! -name '*.md' -exec cp {} "fuzz/corpus/$target/" \;
  fi
done
for d in fuzz/corpus/*/; do echo "$d: $(ls "$d" | wc -l) files"; done
