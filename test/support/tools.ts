import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root, found from this file's location. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ToolPaths {
  KUBE_APISERVER: string;
  KUBE_CONTROLLER_MANAGER: string;
  KUBECTL: string;
  KUBE_SCHEDULER: string;
  KUBELET: string;
  KUBE_PROXY: string;
  ETCD: string;
  HELM: string;
  CSI_SANITY: string;
  SNAPSHOT_CONTROLLER: string;
  CSI_SNAPSHOTTER: string;
  CSI_PROTO: string;
  PLUGIN_REGISTRATION_PROTO: string;
  PAUSE: string;
}

let cached: ToolPaths | undefined;

/** Where `make tools` put each binary; tools/build.sh is the single source of these paths. */
export function toolPaths(): ToolPaths {
  if (!cached) {
    const out = execFileSync('bash', [path.join(repoRoot, 'tools/build.sh'), 'paths'], {
      encoding: 'utf8',
    });
    const entries = out
      .trim()
      .split('\n')
      .map((line) => line.split('=', 2) as [string, string]);
    cached = Object.fromEntries(entries) as unknown as ToolPaths;
  }
  return cached;
}

/** The path of one tool, or an error that says how to get it. */
export function tool(name: keyof ToolPaths): string {
  const file = toolPaths()[name];
  if (!existsSync(file)) {
    throw new Error(`${name} is not built (${file} is missing): run \`make tools\``);
  }
  return file;
}

/** The Kubernetes version tools/kube builds, e.g. v1.36.3. */
export function kubeVersion(): string {
  const match = /kube-(v\d+\.\d+\.\d+)-/.exec(toolPaths().KUBE_APISERVER);
  if (!match?.[1])
    throw new Error(`cannot read the Kubernetes version from ${toolPaths().KUBE_APISERVER}`);
  return match[1];
}
