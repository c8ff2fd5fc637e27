#!/usr/bin/env bash
# Run the add-on tests marked blender_matrix in the bpy venv of each Blender version given, one after
# another; print one line per version (tests, seconds) and fail if any version failed.
# Usage: tests/blender_matrix.sh VENVS_DIR VERSION... (venvs made by `make test-blender`).
set -u
venvs=$1
shift
summary=()
failed=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for v in "$@"; do
    py="$venvs/$v/bin/python"
    echo "=== Blender (bpy) $v, $("$py" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])')"
    start=$(date +%s)
    "$py" -m pytest -q -p no:cacheprovider -m blender_matrix tests/addon 2>&1 | tee "$logs/$v.log"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    result=$(grep -E '[0-9]+ (passed|failed)' "$logs/$v.log" | tail -n 1)
    summary+=("bpy $v: ${result:-no result} (exit $rc, ${secs} s)")
    [ "$rc" -eq 0 ] || failed=1
done
echo "=== Blender matrix"
printf '%s\n' "${summary[@]}"
exit $failed
