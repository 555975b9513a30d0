#!/usr/bin/env bash
# Builds the resman Debian package: testout/dist/resman_<version>_amd64.deb
# (testout/ is ignored by git). Usage: scripts/build-deb.sh, or make deb.
#
# Environment:
#   RESMAN_VERSION     package version, a Debian version (1.2.3, 1.2.3~rc1-1);
#                      default: the tag vX.Y.Z on HEAD without its v, else
#                      0.0.0~git<commit date>.<commit>
#   RESMAN_BIN         an already built linux/amd64 resman to package (checked
#                      with go version -m); default: build one (static,
#                      trimmed, version stamped)
#   OUT_DIR            where the .deb goes; default testout/dist
#   RESMAN_MAINTAINER  the Maintainer field
#   RESMAN_DEB_COMPRESSION  gzip (default), xz, zstd or none
#   NFPM               the nfpm command; default: go run of a pinned nfpm,
#                      fetched once through the Go module proxy, then cached
#
# Exit status: 0 built (the path is the last line printed), 1 failed,
# 3 the packaging tool (nfpm) could not be fetched or run.
set -euo pipefail
cd "$(dirname "$0")/.."

# v2.46 and later need modules outside the Go module proxy (an msix packager).
NFPM_VERSION=v2.45.2
NFPM=${NFPM:-go run github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}}
OUT_DIR=${OUT_DIR:-testout/dist}
export RESMAN_MAINTAINER=${RESMAN_MAINTAINER:-resman maintainers <resman@localhost>}
compression=${RESMAN_DEB_COMPRESSION:-gzip}
case "$compression" in
  gzip|xz|zstd|none) ;;
  *) echo "build-deb: RESMAN_DEB_COMPRESSION must be gzip, xz, zstd or none, got '$compression'" >&2; exit 1 ;;
esac

if [ -z "${RESMAN_VERSION:-}" ]; then
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
    RESMAN_VERSION=${tag#v}
  elif rev=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    RESMAN_VERSION="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).${rev}"
  else
    RESMAN_VERSION=0.0.0~dev
  fi
fi
case "$RESMAN_VERSION" in
  [0-9]*) ;;
  *) echo "build-deb: RESMAN_VERSION must start with a digit, got '$RESMAN_VERSION'" >&2; exit 1 ;;
esac
# A Debian version (deb-version(7)) that dpkg accepts: an optional epoch
# (N:), then digits first, then letters, digits and . + ~ -, not ending in
# - (an empty revision). Anything else makes a package dpkg refuses.
if ! [[ "$RESMAN_VERSION" =~ ^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$ ]] || [[ "$RESMAN_VERSION" == *- ]]; then
  echo "build-deb: RESMAN_VERSION must be a Debian version like 1.2.3 or 1.2.3~rc1-1 (digits first, then letters, digits and . + ~ -, not ending in -), got '$RESMAN_VERSION'" >&2
  exit 1
fi
export RESMAN_VERSION

# A given binary is checked before anything is fetched or written: a
# regular executable file, Go's build of resman for linux/amd64 (the
# package's architecture).
if [ -n "${RESMAN_BIN:-}" ]; then
  why=
  if [ ! -e "$RESMAN_BIN" ]; then why="no such file"
  elif [ ! -f "$RESMAN_BIN" ]; then why="not a regular file"
  elif [ ! -x "$RESMAN_BIN" ]; then why="not executable"
  fi
  if [ -n "$why" ]; then
    echo "build-deb: RESMAN_BIN must be a built resman, got '$RESMAN_BIN': $why" >&2
    exit 1
  fi
  if ! bininfo=$(go version -m "$RESMAN_BIN" 2>&1); then
    echo "build-deb: RESMAN_BIN '$RESMAN_BIN' is not a Go program: $(printf '%s' "$bininfo" | tail -n 1)" >&2
    exit 1
  fi
  # The awk programs read their whole input: one that exits at the first
  # match can close the pipe while printf still writes (the text is over
  # 4 KiB), and pipefail turns that SIGPIPE into exit 141.
  binpath=$(printf '%s\n' "$bininfo" | awk '$1 == "path" && !n++ { print $2 }')
  binos=$(printf '%s\n' "$bininfo" | awk '$1 == "build" && $2 ~ /^GOOS=/ && !n++ { sub(/^GOOS=/, "", $2); print $2 }')
  binarch=$(printf '%s\n' "$bininfo" | awk '$1 == "build" && $2 ~ /^GOARCH=/ && !n++ { sub(/^GOARCH=/, "", $2); print $2 }')
  if [ "$binpath" != "github.com/resman-pbx/resman/cmd/resman" ]; then
    echo "build-deb: RESMAN_BIN '$RESMAN_BIN' is not resman: it is a build of '${binpath:-an unknown package}', want github.com/resman-pbx/resman/cmd/resman" >&2
    exit 1
  fi
  if [ "$binos/$binarch" != "linux/amd64" ]; then
    echo "build-deb: RESMAN_BIN '$RESMAN_BIN' is built for $binos/$binarch, the package is for linux/amd64 (build with GOOS=linux GOARCH=amd64)" >&2
    exit 1
  fi
fi
# Reproducible timestamps: the last commit's time.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

nfpm_err=$(mktemp)
trap 'rm -f "$nfpm_err"' EXIT
if ! $NFPM --version >/dev/null 2>"$nfpm_err"; then
  echo "build-deb: the packaging tool cannot be fetched or run ($NFPM):" >&2
  tail -n 5 "$nfpm_err" >&2
  exit 3
fi

mkdir -p "$OUT_DIR"
if [ -z "${RESMAN_BIN:-}" ]; then
  RESMAN_BIN="$OUT_DIR/build/resman"
  echo "build-deb: building resman $RESMAN_VERSION" >&2
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
    -ldflags "-s -w -X main.version=$RESMAN_VERSION" -o "$RESMAN_BIN" ./cmd/resman
fi
# The copyright file: ours, then the licence of every Go module linked into
# the binary, as the binary itself lists them.
copyright="$OUT_DIR/copyright"
cp deploy/debian/copyright "$copyright"
mods=$(go version -m "$RESMAN_BIN" | awk '$1 == "dep" { print $2 "@" $3 }')
if [ -n "$mods" ]; then
  # Download (from the module cache when there) to find each module's files.
  # shellcheck disable=SC2086
  dirs=$(go mod download -json $mods | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  for mod in $mods; do
    # The module cache writes capitals as !lower.
    esc=/$(printf '%s' "$mod" | sed 's/[A-Z]/!\L&/g')
    dir=$(printf '%s\n' "$dirs" | awk -v s="$esc" 'substr($0, length($0) - length(s) + 1) == s && !n++')
    lic=$(ls "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* 2>/dev/null | head -n 1 || true)
    if [ -z "$lic" ]; then
      echo "build-deb: no licence file found for $mod" >&2
      exit 1
    fi
    {
      printf '\nFiles: /usr/bin/resman (Go module %s)\n' "${mod%@*}"
      printf 'Copyright: see the licence text\n'
      printf 'License: %s\n' "$(basename "$lic") of ${mod%@*} ${mod#*@}"
      sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$lic"
    } >>"$copyright"
  done
fi
{
  printf '\nFiles: /usr/bin/resman (the Go standard library, %s)\n' "$(go env GOVERSION)"
  printf 'Copyright: see the licence text\n'
  printf 'License: LICENSE of Go\n'
  sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$(go env GOROOT)/LICENSE"
} >>"$copyright"
copyright_abs=$(cd "$(dirname "$copyright")" && pwd)/$(basename "$copyright")

# Shell completion, from the binary itself (cobra).
completions="$OUT_DIR/completions"
mkdir -p "$completions"
"$RESMAN_BIN" completion bash >"$completions/resman"
"$RESMAN_BIN" completion zsh >"$completions/_resman"
"$RESMAN_BIN" completion fish >"$completions/resman.fish"
completions_abs=$(cd "$completions" && pwd)

# nfpm expands variables in version and maintainer only: put the paths of
# the files made here and the compression in a copy of the config.
config="$OUT_DIR/nfpm.yaml"
bin_abs=$(cd "$(dirname "$RESMAN_BIN")" && pwd)/$(basename "$RESMAN_BIN")
sed -e "s|\${RESMAN_BIN}|$bin_abs|" -e "s|\${RESMAN_COPYRIGHT}|$copyright_abs|" \
  -e "s|\${RESMAN_COMPLETIONS}|$completions_abs|" -e "s|\${RESMAN_DEB_COMPRESSION}|$compression|" \
  deploy/nfpm.yaml >"$config"

deb="$OUT_DIR/resman_${RESMAN_VERSION}_amd64.deb"
rm -f "$deb"
$NFPM package --config "$config" --packager deb --target "$deb" >&2
echo "$deb"
