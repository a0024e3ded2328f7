// Package cspec pins the CSI specification module; the Makefile reads csi.proto from
// its download directory. Nothing here is built into snapback.
package cspec

import _ "github.com/container-storage-interface/spec/lib/go/csi"
