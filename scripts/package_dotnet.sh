#!/usr/bin/env bash
# Builds the NuGet package target/packages/dotnet/Trunkline.VERSION.nupkg without the .NET SDK and
# prints its path: the binding compiled with Mono's mcs (lib/net45/Trunkline.dll and its XML docs)
# and the native library in NuGet's runtime-specific layout (runtimes/linux-x64/native/
# libtrunkline.so, with libopus.so.0 beside it and its license: scripts/package_opus.sh), as
# bindings/dotnet/Trunkline.nuspec lists them. With the .NET SDK,
# `dotnet pack bindings/dotnet/Trunkline.csproj` makes the net8.0 package with the same layout.
#
# Usage: scripts/package_dotnet.sh [LIBDIR]
#   LIBDIR holds the libtrunkline.so to ship (default: what scripts/package_lib.sh builds).
#
# A .nupkg is a zip: the .nuspec (without its <files> list) at the root, the files where <files>
# puts them, and the two small Open Packaging parts nuget itself writes ([Content_Types].xml and
# _rels/.rels). The nuspec's $binDir$, $nativeLib$ and $bundleDir$ are filled in as
# `nuget pack -Properties` would.
set -euo pipefail
cd "$(dirname "$0")/.."

lib_dir=${1:-$(./scripts/package_lib.sh)}
lib=$(cd "$lib_dir" && pwd)/libtrunkline.so
[[ -f $lib ]] || { echo "no $lib" >&2; exit 1; }
out=$PWD/target/packages/dotnet
rm -rf "$out"
mkdir -p "$out/bin"
./scripts/package_opus.sh "$lib" "$out/bundle" >/dev/null

echo "== mcs: Trunkline.dll (release)" >&2
mcs -nologo -warnaserror+ -optimize+ -target:library -unsafe -doc:"$out/bin/Trunkline.xml" \
  -out:"$out/bin/Trunkline.dll" bindings/dotnet/src/*.cs >&2

echo "== nupkg from bindings/dotnet/Trunkline.nuspec" >&2
python3 - bindings/dotnet/Trunkline.nuspec "$out" "binDir=$out/bin" "nativeLib=$lib" "bundleDir=$out/bundle" <<'PY'
import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

nuspec, out_dir, *props = sys.argv[1:]
props = dict(p.split("=", 1) for p in props)
NS = "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"


def token(m):
    if m.group(1) not in props:
        sys.exit(f"{nuspec}: no value given for ${m.group(1)}$")
    return props[m.group(1)]


ET.register_namespace("", NS)
root = ET.fromstring(re.sub(r"\$(\w+)\$", token, Path(nuspec).read_text(encoding="utf-8")))
meta = root.find(f"{{{NS}}}metadata")
pkg_id, version = meta.findtext(f"{{{NS}}}id"), meta.findtext(f"{{{NS}}}version")
files = root.find(f"{{{NS}}}files")
entries = []
for f in files:
    src = Path(nuspec).parent / f.get("src")  # an absolute src stays as it is
    target = f.get("target")
    if target.endswith("/"):
        target += src.name
    if not src.is_file():
        sys.exit(f"{nuspec}: {src} (for {target}) does not exist")
    entries.append((src, target))
root.remove(files)  # a packed .nuspec lists no files

opc_types = {"rels": "application/vnd.openxmlformats-package.relationships+xml"}
for ext in sorted({Path(t).suffix[1:] for _, t in entries} | {"nuspec"}):
    opc_types.setdefault(ext, "application/octet")
content_types = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    + "".join(f'<Default Extension="{e}" ContentType="{t}" />' for e, t in opc_types.items())
    + "</Types>"
)
rels = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Type="http://schemas.microsoft.com/packaging/2010/07/manifest" Target="/{pkg_id}.nuspec" Id="R0" />'
    "</Relationships>"
)
nupkg = Path(out_dir) / f"{pkg_id}.{version}.nupkg"
with zipfile.ZipFile(nupkg, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("_rels/.rels", rels)
    z.writestr(f"{pkg_id}.nuspec", ET.tostring(root, encoding="unicode", xml_declaration=True))
    for src, target in entries:
        z.write(src, target)
    z.writestr("[Content_Types].xml", content_types)
print(nupkg)
PY
