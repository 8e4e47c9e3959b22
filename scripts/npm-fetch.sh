# Sourced by the vendor-*.sh scripts: fetch one pinned npm package, check it, unpack it.
#
# fetch_verified NAME VERSION INTEGRITY WORKDIR unpacks the registry tarball of NAME@VERSION
# into WORKDIR/package, after checking it against INTEGRITY (`npm view NAME@VERSION
# dist.integrity`), so vendoring the same version always gives the same bytes.
fetch_verified() {
  local name=$1 version=$2 integrity=$3 work=$4 tarball actual
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$work/$name-$version.tgz"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "$name@$version: integrity $actual, expected $integrity" >&2
    return 1
  fi
  tar -xzf "$tarball" -C "$work"
}
