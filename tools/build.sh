#!/usr/bin/env bash
# Builds the test control plane and the peer tools from the Go modules beside this script,
# into a cache keyed by each module's version and go.sum, so a warm `make tools` builds nothing.
#
#   tools/build.sh build [TOOL...]   build what is missing (all tools when none is named)
#   tools/build.sh paths             print NAME=PATH lines for every binary and csi.proto
#
# Nothing built here is part of snapback; these are the real peers our tests run against.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SNAPBACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snapback}
bin=$cache/bin
all_tools=(kube etcd helm csi-test snapshotter csi-spec kubelet-api pause)
# the Kubernetes commands built from tools/kube: the control plane, kubectl, and a node
kube_commands=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)

die() { echo "make tools: $*" >&2; exit 1; }

# version of module $2 required by tools/$1/go.mod
module_version() {
  sed -n "s#^[[:space:]]*\(require \)\{0,1\}$2 \(v[^ ]*\).*#\2#p" "$here/$1/go.mod" | head -n 1
}

# the cache directory of a tool: its upstream version plus a hash of its go.mod and go.sum
tool_dir() {
  local tool=$1 version sum
  case $tool in
    kube) version=$(module_version kube k8s.io/kubernetes) ;;
    etcd) version=$(module_version etcd go.etcd.io/etcd/server/v3) ;;
    helm) version=$(module_version helm helm.sh/helm/v3) ;;
    csi-test) version=$(module_version csi-test github.com/kubernetes-csi/csi-test/v5) ;;
    snapshotter) version=$(module_version snapshotter github.com/kubernetes-csi/external-snapshotter/v8) ;;
    csi-spec) version=$(module_version csi-spec github.com/container-storage-interface/spec) ;;
    kubelet-api) version=$(module_version kubelet-api k8s.io/kubelet) ;;
    pause) version=$(sed -n 's/^const version = "\(.*\)"/\1/p' "$here/pause/main.go") ;;
    *) die "unknown tool '$tool' (known: ${all_tools[*]})" ;;
  esac
  [ -n "$version" ] || die "cannot read the $tool version from tools/$tool/go.mod"
  sum=$({
    cat "$here/$tool/go.mod" "$here/$tool/go.sum"
    case $tool in
      kube) echo "${kube_commands[*]}" ;;
      pause) cat "$here/pause/main.go" ;;
    esac
  } | sha256sum | cut -c1-10)
  echo "$bin/$tool-$version-$sum"
}

paths() {
  local k e h c s p r a
  k=$(tool_dir kube); e=$(tool_dir etcd); h=$(tool_dir helm)
  c=$(tool_dir csi-test); s=$(tool_dir snapshotter); p=$(tool_dir csi-spec)
  r=$(tool_dir kubelet-api); a=$(tool_dir pause)
  cat <<EOF
KUBE_APISERVER=$k/kube-apiserver
KUBE_CONTROLLER_MANAGER=$k/kube-controller-manager
KUBECTL=$k/kubectl
KUBE_SCHEDULER=$k/kube-scheduler
KUBELET=$k/kubelet
KUBE_PROXY=$k/kube-proxy
ETCD=$e/etcd
HELM=$h/helm
CSI_SANITY=$c/csi-sanity
SNAPSHOT_CONTROLLER=$s/snapshot-controller
CSI_SNAPSHOTTER=$s/csi-snapshotter
CSI_PROTO=$p/csi.proto
PLUGIN_REGISTRATION_PROTO=$r/pluginregistration.proto
PAUSE=$a/pause
EOF
}

gobuild() { # gobuild MODULE_DIR OUT_DIR LDFLAGS PACKAGE...
  local dir=$1 out=$2 ld=$3; shift 3
  (cd "$here/$dir" && GOWORK=off CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
    go build -trimpath -tags="${GO_TAGS:-}" -ldflags="-s -w $ld" -o "$out/" "$@")
}

build_one() {
  local tool=$1 dir tmp log version ld
  dir=$(tool_dir "$tool")
  [ -d "$dir" ] && return 0
  command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH; snapback's test tools are built from Go modules (Go >= 1.24 and the Go module proxy are needed)"
  mkdir -p "$bin"
  tmp=$(mktemp -d "$bin/.$tool.XXXXXX")
  log=$bin/$tool.build.log
  echo "building $tool into $dir (log: $log)"
  version=${dir#"$bin/$tool-"}; version=${version%-*}
  if ! case $tool in
    kube)
      ld=""
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld="$ld -X $p.gitVersion=$version -X $p.gitMajor=$(echo "$version" | cut -d. -f1 | tr -d v)"
        ld="$ld -X $p.gitMinor=$(echo "$version" | cut -d. -f2) -X $p.gitTreeState=clean"
        ld="$ld -X $p.buildDate=1970-01-01T00:00:00Z"
      done
      GO_TAGS=selinux,notest,grpcnotrace gobuild kube "$tmp" "$ld" \
        "${kube_commands[@]/#/k8s.io/kubernetes/cmd/}"
      ;;
    etcd) gobuild etcd "$tmp" "" go.etcd.io/etcd/server/v3 && mv "$tmp"/server "$tmp/etcd" ;;
    helm) gobuild helm "$tmp" "-X helm.sh/helm/v3/internal/version.version=$version" helm.sh/helm/v3/cmd/helm ;;
    csi-test) gobuild csi-test "$tmp" "" github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity ;;
    snapshotter)
      gobuild snapshotter "$tmp" "-X main.version=$version" \
        github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller \
        github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter
      ;;
    csi-spec)
      local src
      src=$(cd "$here/csi-spec" && GOWORK=off go mod download -json github.com/container-storage-interface/spec |
        sed -n 's/.*"Dir": "\(.*\)",/\1/p')
      [ -f "$src/csi.proto" ] && cp "$src/csi.proto" "$tmp/csi.proto"
      ;;
    kubelet-api)
      # kubelet's plugin registration API, which snapback's node registrar serves
      local src
      src=$(cd "$here/kubelet-api" && GOWORK=off go mod download -json k8s.io/kubelet |
        sed -n 's/.*"Dir": "\(.*\)",/\1/p')
      [ -f "$src/pkg/apis/pluginregistration/v1/api.proto" ] &&
        cp "$src/pkg/apis/pluginregistration/v1/api.proto" "$tmp/pluginregistration.proto"
      ;;
    pause) gobuild pause "$tmp" "" . ;;
  esac >"$log" 2>&1; then
    rm -rf "$tmp"
    die "building $tool failed: $(grep -v '^go: downloading' "$log" | tail -n 1) (full log: $log)"
  fi
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

case ${1:-build} in
  paths) paths ;;
  build)
    shift || true
    tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=("${all_tools[@]}")
    for t in "${tools[@]}"; do build_one "$t"; done
    ;;
  *) die "usage: tools/build.sh build [TOOL...] | paths" ;;
esac
