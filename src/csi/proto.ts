import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import type { ProtoGrpcType } from '../gen/csi/csi.js';

/**
 * How csi.proto is turned into JS objects. tools/generate/codegen.ts derives the generator's flags
 * from this, so the generated types describe exactly these shapes: snake_case fields, int64
 * as decimal strings, enums as their names, defaults filled in, oneof names set.
 */
export const protoLoaderOptions = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The environment variable naming csi.proto when no path is passed explicitly. */
export const csiProtoEnv = 'SNAPBACK_CSI_PROTO';

/**
 * Where csi.proto is: the explicit path, else $SNAPBACK_CSI_PROTO, else `csi.proto` in the
 * directory of the compiled package (`dist/`, where the build copies it). The file comes from
 * the pinned Go module github.com/container-storage-interface/spec, never from this repository.
 */
export function resolveCsiProto(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [explicit, env[csiProtoEnv], packagedFile('csi.proto')].filter(
    (p): p is string => typeof p === 'string' && p !== '',
  );
  const found = candidates.find((p) => existsSync(p));
  if (found) return found;
  throw new Error(
    `csi.proto not found (looked at: ${candidates.join(', ') || 'nothing'}); pass ` +
      `--csi-proto=<path> or set ${csiProtoEnv}. \`make tools\` downloads it from the Go ` +
      `module github.com/container-storage-interface/spec (\`bash tools/build.sh paths\` ` +
      `prints CSI_PROTO).`,
  );
}

/**
 * A file the build copies into dist/ (csi.proto, pluginregistration.proto), found from this
 * module's location in dist/src/csi/ (or src/csi/ under tsx).
 */
export function packagedFile(name: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) {
    dir = path.dirname(dir);
  }
  return path.join(dir, 'dist', name);
}

const loaded = new Map<string, ProtoGrpcType>();

/** The csi.v1 services and messages, loaded once per proto path. */
export function loadCsi(protoPath: string): ProtoGrpcType {
  let csi = loaded.get(protoPath);
  if (!csi) {
    const definition = protoLoader.loadSync(protoPath, protoLoaderOptions);
    csi = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
    loaded.set(protoPath, csi);
  }
  return csi;
}
