#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the Kubernetes runtime's
# tests, e2e and benchmark. Kubernetes v1.34.4 and etcd v3.6.16 are built from the Go
# module proxy inside our own modules (tools/kubernetes/{cluster,etcd,pause}: go.mod +
# go.sum pin every dependency); containerd, runc, the CNI plugins and conntrack are
# Debian's. Every address is on this machine: etcd and the components' ports on
# loopback, the apiserver and kubelet on the pod bridge's gateway address (10.244.0.1),
# Services in 10.96.0.0/24, routed to the bridge. There is no cluster DNS.
#
#   scripts/kubernetes.sh build             binaries into $cache/kubernetes/<version>/bin (once)
#   scripts/kubernetes.sh up                a fresh cluster (stops a running one first);
#                                           prints the admin kubeconfig's path
#   scripts/kubernetes.sh ensure            the running cluster if it is healthy, else `up`
#   scripts/kubernetes.sh down              stops it all and cleans the host (processes,
#                                           interfaces, iptables chains, mounts, netns)
#   scripts/kubernetes.sh import-image TAG  docker save TAG | ctr import (pods use it with
#                                           imagePullPolicy Never / IfNotPresent)
#   scripts/kubernetes.sh kubeconfig        prints the kubeconfig path
#   scripts/kubernetes.sh kubectl ARGS…     kubectl against the cluster
#   scripts/kubernetes.sh ctr ARGS…         the cluster's containerd (tests kill workers with it)
#   scripts/kubernetes.sh stop-apiserver    stops the apiserver alone (everything else runs on:
#                                           the kubelet keeps its Pods, watches break)
#   scripts/kubernetes.sh start-apiserver   starts it again on the same state; returns once
#                                           it is ready
#
# Facts behind the flags (each one a failure seen on this kind of machine):
# - root here lacks CAP_SYS_RESOURCE, so runc cannot set the oom_score_adj kubelet asks
#   for: containerd's CRI config has restrict_oom_score_adj.
# - dockerd sets FORWARD to DROP and bridge-nf-call-iptables, which drops pod-to-pod
#   traffic: the CNI conflist has the firewall plugin, which accepts the bridge's traffic.
# - no dummy interface in this kernel: the Service range is routed to the pod bridge, so a
#   ClusterIP packet kube-proxy has not translated yet never heads for the default route.
# - cgroup v1 with containerd 1.6: failCgroupV1 false, cgroupfs driver.
# - kubelet and containerd hard-code paths outside the state directory; `down` removes
#   what they leave there, and waits for containerd's tasks before stopping kubelet (a
#   pod deleted without grace leaves the API before CNI DEL ran: leaked veths and netns).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/tools/kubernetes"
k8s_version="v1.34.4"
# The cache key: the release and our modules' exact contents (a change to
# tools/kubernetes rebuilds instead of reusing old binaries).
version="$k8s_version-$(cd "$tools" && cat cluster/go.mod cluster/go.sum etcd/go.mod etcd/go.sum etcd/main.go pause/go.mod pause/main.go | sha256sum | cut -c1-12)"
# Outside the checkout, so every clone on this machine (CI runs in fresh clones) reuses it.
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
bin="$cache/kubernetes/$version/bin"
gocache="$cache/kubernetes/go" # module and build caches, shared by every version
# The running cluster's state: wiped by every `up`, so each cluster starts fresh.
state="${MODELDOCK_K8S_STATE_DIR:-$cache/kubernetes/state}"
lock="$cache/kubernetes/lock"
bridge="k8sbr0"
node_ip="10.244.0.1"
pod_cidr="10.244.0.0/24"
service_cidr="10.96.0.0/24"
node_name="modeldock-node"
pause_image="registry.k8s.io/pause:3.10"
components="proxy kubelet scheduler controller-manager apiserver etcd"
export KUBECONFIG="$state/admin.kubeconfig"

log() { printf '[kubernetes] %s\n' "$*" >&2; }
die() { printf '[kubernetes] error: %s\n' "$*" >&2; exit 1; }

find_go() { bash "$root/scripts/go-toolchain.sh"; }

build() {
  local need="etcd kube-apiserver kubelet kubectl kube-proxy kube-controller-manager kube-scheduler pause"
  local missing=0 b
  for b in $need; do [ -x "$bin/$b" ] || missing=1; done
  if [ "$missing" = 0 ]; then log "kubernetes $version already built: $bin"; return; fi
  local go_cmd; go_cmd="$(find_go)"
  log "building kubernetes $version with $("$go_cmd" version) (first time only, ~6 min on 2 cores; cached in $cache/kubernetes)"
  mkdir -p "$gocache"
  # Into a temporary directory first: an interrupted build never leaves binaries that look done.
  local out="$bin.tmp" ld="-s -w" p
  rm -rf "$out" && mkdir -p "$out"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=34 -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  (
    export GOMODCACHE="$gocache/mod" GOCACHE="$gocache/build" GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
    cd "$tools/cluster" && "$go_cmd" build -trimpath -ldflags "$ld" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
    cd "$tools/etcd" && "$go_cmd" build -trimpath -ldflags '-s -w' -o "$out/etcd" .
    cd "$tools/pause" && "$go_cmd" build -trimpath -ldflags '-s -w' -o "$out/pause" .
  )
  rm -rf "$bin" && mv "$out" "$bin"
  "$bin/kubectl" version --client | head -1 >&2
}

need_host_packages() {
  local missing=() p
  for p in containerd runc containernetworking-plugins conntrack; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] || die "missing Debian packages: ${missing[*]} (apt-get install -y ${missing[*]}; .ci/run installs them)"
  [ "$(id -u)" = 0 ] || die "the cluster needs root (network namespaces, iptables, mounts)"
}

# The pause image as a docker-archive tarball, written without Docker: one layer holding /pause.
make_pause_image() {
  local dir="$state/images/pause" layer digest config config_digest
  rm -rf "$dir" && mkdir -p "$dir/rootfs" "$dir/archive"
  cp "$bin/pause" "$dir/rootfs/pause"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir/rootfs" -cf "$dir/layer.tar" pause
  digest="$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
  mkdir -p "$dir/archive/$digest" && mv "$dir/layer.tar" "$dir/archive/$digest/layer.tar"
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/pause\"],\"WorkingDir\":\"/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$digest\"]}}"
  config_digest="$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
  printf '%s' "$config" >"$dir/archive/$config_digest.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_digest" "$pause_image" "$digest" >"$dir/archive/manifest.json"
  tar -C "$dir/archive" -cf "$state/images/pause.tar" .
}

ctr_() { ctr -a "$state/containerd/containerd.sock" -n k8s.io "$@"; }

make_certs() { # a CA, the apiserver's serving certificate, client certificates, the service-account keys
  local pki="$state/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -key ca.key -subj "/CN=modeldock-test-ca" -days 365 -out ca.crt 2>/dev/null
    sign() { # name subject extensions
      openssl genrsa -out "$1.key" 2048 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    }
    sign apiserver "/CN=kube-apiserver" "subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost,IP:127.0.0.1,IP:$node_ip,IP:10.96.0.1
extendedKeyUsage=serverAuth"
    sign admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
    sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
    sign node "/O=system:nodes/CN=system:node:$node_name" "extendedKeyUsage=clientAuth"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  local name cert
  for name in admin kubelet; do
    cert=$([ "$name" = kubelet ] && echo node || echo admin)
    cat >"$state/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modeldock-test
  cluster: {server: "https://$node_ip:6443", certificate-authority: $pki/ca.crt}
users:
- name: $name
  user: {client-certificate: $pki/$cert.crt, client-key: $pki/$cert.key}
contexts:
- name: modeldock-test
  context: {cluster: modeldock-test, user: $name}
current-context: modeldock-test
EOF
  done
}

write_configs() {
  mkdir -p "$state/containerd" "$state/cni/net.d" "$state/cni/ipam"
  cat >"$state/containerd/config.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
[grpc]
  address = "$state/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
  cat >"$state/cni/net.d/10-modeldock.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "modeldock-k8s",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$state/cni/ipam",
                "ranges": [[{ "subnet": "$pod_cidr", "gateway": "$node_ip" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "firewall", "backend": "iptables" }
  ]
}
EOF
  cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
failSwapOn: false
failCgroupV1: false
podLogsDir: $state/pod-logs
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
resolvConf: ""
EOF
}

start() { # name command… — in the background, logged, its PID recorded for `down`
  local name="$1"; shift
  # 9>&-: the daemon must not inherit (and so hold forever) the lock's file descriptor.
  nohup "$@" >>"$state/logs/$name.log" 2>&1 9>&- &
  echo $! >"$state/pids/$name.pid"
}

wait_for() { # description seconds command…
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not happen within ${seconds}s (logs in $state/logs)"
    sleep 0.2
  done
}

alive() { [ -f "$state/pids/$1.pid" ] && kill -0 "$(cat "$state/pids/$1.pid")" 2>/dev/null; }

healthy() {
  local c
  for c in containerd $components; do alive "$c" || return 1; done
  "$bin/kubectl" get --raw /readyz >/dev/null 2>&1 || return 1
  [ "$("$bin/kubectl" get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

start_apiserver() { # on the running cluster's state; returns once it is ready
  local p="$state/pki" b="$bin"
  start apiserver "$b/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address="$node_ip" --advertise-address="$node_ip" --secure-port=6443 \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --kubelet-client-certificate="$p/kubelet-client.crt" --kubelet-client-key="$p/kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range="$service_cidr" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --cert-dir="$state/apiserver-certs" --profiling=false
  wait_for "the apiserver to be ready" 90 "$b/kubectl" get --raw /readyz
}

up() {
  need_host_packages
  build
  down_locked quiet
  local t0=$SECONDS p="$state/pki" b="$bin"
  rm -rf "$state"
  mkdir -p "$state/logs" "$state/pids" "$state/images" "$state/etcd" "$state/pod-logs" "$state/kubelet"
  make_certs
  write_configs
  make_pause_image
  # The bridge exists, with the CNI gateway address, before the first pod, so the Service
  # route can point at it and the apiserver and kubelet can bind to that address.
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
  ip addr replace "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
  ip route replace "$service_cidr" dev "$bridge"

  start containerd /usr/bin/containerd --config "$state/containerd/config.toml"
  wait_for "containerd to answer" 30 ctr_ version
  ctr_ images import "$state/images/pause.tar" >/dev/null
  start etcd "$b/etcd" --name=node --data-dir="$state/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=node=http://127.0.0.1:2380 --listen-metrics-urls=http://127.0.0.1:2381
  start_apiserver
  start controller-manager "$b/kube-controller-manager" --kubeconfig="$state/admin.kubeconfig" \
    --authentication-kubeconfig="$state/admin.kubeconfig" --authorization-kubeconfig="$state/admin.kubeconfig" \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" --leader-elect=false \
    --use-service-account-credentials=true \
    --bind-address=127.0.0.1 --cert-dir="$state/kcm-certs" --profiling=false
  start scheduler "$b/kube-scheduler" --kubeconfig="$state/admin.kubeconfig" \
    --authentication-kubeconfig="$state/admin.kubeconfig" --authorization-kubeconfig="$state/admin.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1
  start kubelet "$b/kubelet" --config="$state/kubelet.yaml" --kubeconfig="$state/kubelet.kubeconfig" \
    --root-dir="$state/kubelet" --cert-dir="$state/kubelet/pki" --hostname-override="$node_name" --node-ip="$node_ip"
  start proxy "$b/kube-proxy" --kubeconfig="$state/admin.kubeconfig" --proxy-mode=iptables \
    --hostname-override="$node_name" --cluster-cidr="$pod_cidr" --conntrack-max-per-core=0 \
    --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256
  wait_for "the node to register" 90 "$b/kubectl" get node "$node_name"
  "$b/kubectl" wait --for=condition=Ready "node/$node_name" --timeout=120s >/dev/null
  # Pods need the namespace's default ServiceAccount, which the controller-manager creates.
  wait_for "the default ServiceAccount" 60 "$b/kubectl" get serviceaccount default
  log "cluster up in $((SECONDS - t0))s; kubeconfig: $KUBECONFIG"
  echo "$KUBECONFIG"
}

stop_pid() { # name: SIGTERM, up to 15 s, then SIGKILL — by the recorded PID only
  local file="$state/pids/$1.pid" pid i
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  kill "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
  for i in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

down_locked() {
  local quiet="${1:-}"
  [ -d "$state" ] || return 0
  # Let kubelet tear the pods down (CNI DEL) while it still runs.
  if alive kubelet && alive apiserver; then
    timeout 60 "$bin/kubectl" delete pods --all -A --grace-period=1 --wait=true --timeout=50s >/dev/null 2>&1 || true
    local i
    for i in $(seq 150); do [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  local c t m n v
  for c in $components; do stop_pid "$c"; done
  if alive containerd; then
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    for t in $(ctr_ containers ls -q 2>/dev/null); do
      for _ in 1 2 3 4 5 6 7 8 9 10; do ctr_ tasks delete "$t" >/dev/null 2>&1 && break; ctr_ tasks ls -q 2>/dev/null | grep -qx "$t" || break; sleep 0.2; done
      ctr_ containers delete "$t" >/dev/null 2>&1 || true
    done
  fi
  stop_pid containerd
  # kube-proxy's chains, then the ones kubelet and the CNI firewall plugin add.
  [ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  for ipt in iptables ip6tables; do
    $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    for t in filter nat mangle; do
      for ch in KUBE-KUBELET-CANARY KUBE-PROXY-CANARY KUBE-FIREWALL KUBE-IPTABLES-HINT; do
        $ipt -t "$t" -F "$ch" 2>/dev/null || true; $ipt -t "$t" -X "$ch" 2>/dev/null || true
      done
    done
  done
  while iptables -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD 2>/dev/null; do :; done
  for ch in CNI-FORWARD CNI-ADMIN; do iptables -F "$ch" 2>/dev/null || true; iptables -X "$ch" 2>/dev/null || true; done
  # What kubelet could not tear down: network namespaces, veths, the bridge and its route.
  for n in $(ls /var/run/netns 2>/dev/null | grep '^cni-' || true); do ip netns delete "$n" 2>/dev/null || true; done
  for v in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$v" 2>/dev/null || true; done
  ip route del "$service_cidr" dev "$bridge" 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
  rm -f /var/lib/cni/results/modeldock-k8s-* /var/lib/cni/results/cni-loopback-*
  for m in $(awk -v s="$state/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for l in /var/log/containers/*.log; do case "$(readlink "$l" 2>/dev/null)" in "$state"/*) rm -f "$l" ;; esac; done
  for d in /sys/fs/cgroup/*/kubepods; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  # Paths outside the state directory that kubelet 1.34, containerd 1.6 and libcni hard-code
  # (rmdir: only when nothing else uses them).
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/log/containers /var/lib/cni/results /var/lib/cni /run/netns 2>/dev/null || true
  rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/fifo /run/containerd/s /run/containerd 2>/dev/null || true
  [ -n "$quiet" ] || log "down"
}

with_lock() { # one cluster per machine: concurrent callers (parallel test files) queue here
  mkdir -p "$(dirname "$lock")"
  exec 9>"$lock"
  flock -w 600 9 || die "another scripts/kubernetes.sh held the lock for 10 minutes"
  "$@"
}

ensure() {
  if [ -x "$bin/kubectl" ] && healthy; then echo "$KUBECONFIG"; return; fi
  up
}

import_image() {
  local tag="${1:?image tag}"
  alive containerd || die "the cluster is not up (scripts/kubernetes.sh up)"
  docker image inspect "$tag" >/dev/null 2>&1 || die "image $tag is not in Docker (npm run images)"
  # Skipped when containerd already holds the same image ID (what `docker save` would write).
  local id; id="$(docker image inspect --format '{{.Id}}' "$tag")"
  if [ "$(ctr_ images ls "name==docker.io/$tag" 2>/dev/null | awk 'NR==2 {print $3}')" != "" ] \
    && [ "$(cat "$state/images/$(echo "$tag" | tr '/:' '__').id" 2>/dev/null)" = "$id" ]; then
    log "$tag already imported"; return
  fi
  docker save "$tag" | ctr_ images import - >/dev/null
  echo "$id" >"$state/images/$(echo "$tag" | tr '/:' '__').id"
  log "imported $tag"
}

# The apiserver alone, for tests of what survives its restart (watches resume, events
# missed meanwhile are delivered). The rest of the cluster runs on.
stop_apiserver() {
  alive containerd || die "the cluster is not up (scripts/kubernetes.sh up)"
  stop_pid apiserver
  log "apiserver stopped"
}

start_apiserver_again() {
  alive containerd || die "the cluster is not up (scripts/kubernetes.sh up)"
  alive apiserver || start_apiserver
  log "apiserver ready"
}

case "${1:-}" in
  build) build ;;
  stop-apiserver) with_lock stop_apiserver ;;
  start-apiserver) with_lock start_apiserver_again ;;
  up) with_lock up ;;
  ensure) with_lock ensure ;;
  down) with_lock down_locked ;;
  import-image) shift; with_lock import_image "$@" ;;
  kubeconfig) echo "$KUBECONFIG" ;;
  kubectl) shift; exec "$bin/kubectl" "$@" ;;
  ctr) shift; ctr_ "$@" ;;
  *) echo "usage: $0 build | up | ensure | down | import-image TAG | kubeconfig | kubectl ARGS… | ctr ARGS… | stop-apiserver | start-apiserver" >&2; exit 2 ;;
esac
