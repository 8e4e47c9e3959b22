#!/usr/bin/env bash
# Re-vendor Swagger UI, the interactive page of GET /api/docs, into the apidocs static files.
#
# The page loads the prebuilt browser bundle and stylesheet of the npm package swagger-ui-dist
# from this server, never from a CDN; its own start-up script is src/jobcast/service/apidocs/static/
# apidocs.js, so the page needs no inline script. The version is pinned and the tarball checked
# against the registry's integrity hash, so running this again gives the same bytes. To move to
# another version: change VERSION and INTEGRITY (from
# `npm view swagger-ui-dist@<version> dist.integrity`), run this, and run
# tests/integration/test_openapi.py (it opens the page in Chromium under the app's CSP).
set -euo pipefail

VERSION=5.35.0
INTEGRITY="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
FILES=(swagger-ui-bundle.js swagger-ui.css)

cd "$(dirname "$0")/.."
DEST=src/jobcast/service/apidocs/static/swagger-ui
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=scripts/npm-fetch.sh
source scripts/npm-fetch.sh

fetch_verified swagger-ui-dist "$VERSION" "$INTEGRITY" "$WORK"

rm -rf "$DEST"
mkdir -p "$DEST"
for file in "${FILES[@]}"; do
  # The bundles end with a sourceMappingURL comment; the maps are not vendored.
  sed '/^\/[*/]# sourceMappingURL=/d' "$WORK/package/$file" > "$DEST/$file"
done
cp "$WORK/package/LICENSE" "$DEST/LICENSE"
cp "$WORK/package/NOTICE" "$DEST/NOTICE"
cp "$WORK/package/swagger-ui-bundle.js.LICENSE.txt" "$DEST/swagger-ui-bundle.js.LICENSE.txt"
{
  echo "swagger-ui-dist $VERSION (npm)"
  echo "files:     package/${FILES[0]}, package/${FILES[1]}, less their sourceMappingURL line"
  echo "tarball:   $INTEGRITY"
  for file in "${FILES[@]}"; do
    echo "sha256:    $(sha256sum "$DEST/$file" | cut -d' ' -f1)  $file"
  done
  echo "license:   Apache-2.0, see LICENSE and NOTICE; bundled third-party notices in"
  echo "           swagger-ui-bundle.js.LICENSE.txt"
  echo "refresh:   scripts/vendor-apidocs.sh"
} > "$DEST/VERSION"
echo "vendored swagger-ui-dist $VERSION into $DEST"
