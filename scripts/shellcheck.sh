#!/usr/bin/env bash
# Runs ShellCheck over every shell script in the repository (found by its #! line, so none is missed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v shellcheck >/dev/null 2>&1 || {
  echo "shellcheck is not installed: run scripts/bootstrap.sh --dev (or apt-get install shellcheck)" >&2
  exit 1
}
scripts=()
while IFS= read -r -d '' file; do
  [ -f "$file" ] && head -n1 "$file" | grep -Eq '^#!.*(/|env )(ba)?sh' && scripts+=("$file")
done < <(git ls-files -z --cached --others --exclude-standard)
[ ${#scripts[@]} -gt 0 ] || { echo "no shell scripts found" >&2; exit 1; }
shellcheck --external-sources "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"
