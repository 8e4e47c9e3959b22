#!/usr/bin/env bash
# Re-vendor the Socket.IO browser client into the dashboard's static files.
#
# The dashboard imports the ES module build of the npm package socket.io-client; the server is
# python-socketio (Socket.IO protocol v5), which the 4.x clients speak. The version is pinned
# and the tarball checked against the registry's integrity hash, so running this again gives
# the same bytes. To move to another version: change VERSION and INTEGRITY (from
# `npm view socket.io-client@<version> dist.integrity`), run this, and test the dashboard.
set -euo pipefail

VERSION=4.8.1
INTEGRITY="sha512-hJVXfu3E28NmzGk8o1sHhN3om52tRvwYeidbj7xKy2eIIse5IoKX3USlS6Tqt3BHAtflLIkCQBkzVrEEfWUyYQ=="

cd "$(dirname "$0")/.."
DEST=src/jobcast/service/web/static/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=scripts/npm-fetch.sh
source scripts/npm-fetch.sh

fetch_verified socket.io-client "$VERSION" "$INTEGRITY" "$WORK"

mkdir -p "$DEST"
cp "$WORK/package/dist/socket.io.esm.min.js" "$DEST/socket.io.esm.min.js"
cp "$WORK/package/LICENSE" "$DEST/socket.io-client.LICENSE"
cat > "$DEST/socket.io-client.VERSION" <<NOTE
socket.io-client $VERSION (npm), Socket.IO protocol v5
file:      package/dist/socket.io.esm.min.js, unmodified (its source map is not vendored)
tarball:   $INTEGRITY
sha256:    $(sha256sum "$DEST/socket.io.esm.min.js" | cut -d' ' -f1)  socket.io.esm.min.js
license:   MIT, see socket.io-client.LICENSE
refresh:   scripts/vendor-socketio.sh
NOTE
echo "vendored socket.io-client $VERSION into $DEST"
