// Package kubeletapi pins the k8s.io/kubelet module, whose plugin registration API
// (pkg/apis/pluginregistration/v1/api.proto) tools/build.sh copies for snapback's node
// registrar. Nothing here is built into snapback.
package kubeletapi

import _ "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
