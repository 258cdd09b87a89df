#!/bin/sh
# Builds the Gradescope autograder for one stage: a zip of this repository (without build/
# and .git/) with setup.sh and run_autograder at its root, as Gradescope wants them, and the
# stage to grade in tests/gradescope/STAGE, which run_autograder reads.
#
#   sh tests/gradescope/make-zip.sh 05 build/autograder-05.zip
set -eu
case ${1-} in
    [1-8]) stage=0$1 ;;
    0[1-8]) stage=$1 ;;
    *) echo "usage: $0 STAGE OUT.zip   (STAGE: 01 to 08)" >&2; exit 2 ;;
esac
[ $# -eq 2 ] || { echo "usage: $0 STAGE OUT.zip" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$(dirname "$2")"
python3 - "$root" "$stage" "$2" <<'PYTHON'
import os
import sys
import time
import zipfile

root, stage, out = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])


def add(zip_file, path, name, mode=None):
    info = zipfile.ZipInfo.from_file(path, name)
    if mode is not None:  # the scripts must be executable, whatever their mode here
        info.external_attr = (0o100000 | mode) << 16
    with open(path, "rb") as f:
        zip_file.writestr(info, f.read(), zipfile.ZIP_DEFLATED)


with zipfile.ZipFile(out + ".part", "w") as zip_file:
    for folder, dirs, files in os.walk(root):
        here = os.path.relpath(folder, root)
        dirs[:] = sorted(d for d in dirs if here != "." or d not in ("build", ".git"))
        for name in sorted(files):
            path = os.path.join(folder, name)
            member = os.path.normpath(os.path.join(here, name))
            # Never a zip (this one, or an older one), nor a stage another zip chose.
            if not name.endswith((".zip", ".zip.part")) and member != "tests/gradescope/STAGE":
                add(zip_file, path, member)
    for script in ("setup.sh", "run_autograder"):
        add(zip_file, os.path.join(root, "tests", "gradescope", script), script, 0o755)
    info = zipfile.ZipInfo("tests/gradescope/STAGE", time.localtime()[:6])
    info.external_attr = 0o100644 << 16
    zip_file.writestr(info, stage + "\n")
os.replace(out + ".part", out)
print("%s: the autograder for stage %s (%d files)" % (
    sys.argv[3], stage, len(zipfile.ZipFile(out).namelist())))
PYTHON
