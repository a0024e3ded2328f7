import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { kubeVersion, repoRoot, tool } from '../../support/tools.js';

const execFileAsync = promisify(execFile);

export const chartDir = path.join(repoRoot, 'charts/snapback');
export const alicloudValues = path.join(chartDir, 'ci/alicloud-values.yaml');

/** Helm's cache, config and data in a throwaway directory, never the user's. */
const helmHome = mkdtempSync(path.join(os.tmpdir(), 'snapback-helm-'));
const helmEnv: NodeJS.ProcessEnv = {
  ...process.env,
  HELM_CACHE_HOME: path.join(helmHome, 'cache'),
  HELM_CONFIG_HOME: path.join(helmHome, 'config'),
  HELM_DATA_HOME: path.join(helmHome, 'data'),
};

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the helm that tools/ built; resolves with the exit code instead of throwing. */
export async function helm(args: string[]): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await execFileAsync(tool('HELM'), args, {
      env: helmEnv,
      maxBuffer: 32 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof code === 'number' ? code : -1,
      stdout: stdout ?? '',
      stderr: stderr ?? '',
    };
  }
}

/** Like `helm`, but a non-zero exit is an error carrying helm's output. */
export async function helmOk(args: string[]): Promise<string> {
  const result = await helm(args);
  if (result.code !== 0) {
    throw new Error(
      `helm ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`,
    );
  }
  return result.stdout;
}

export interface KubeManifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export function parseManifests(text: string): KubeManifest[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0)
        throw new Error(`helm rendered invalid YAML: ${doc.errors[0]!.message}`);
      return doc.toJS() as KubeManifest | null;
    })
    .filter((doc): doc is KubeManifest => doc !== null);
}

/**
 * `helm template` as for the Kubernetes version of the test control plane (without a cluster,
 * helm would otherwise assume its own default version).
 */
export const templateArgs = (): string[] => ['--kube-version', kubeVersion()];

/** `helm template` with the given extra arguments, parsed. */
export async function renderChart(args: string[] = []): Promise<KubeManifest[]> {
  return parseManifests(
    await helmOk([
      'template',
      'snapback',
      chartDir,
      '--namespace',
      'snapback-system',
      ...templateArgs(),
      ...args,
    ]),
  );
}

export function findOne(manifests: KubeManifest[], kind: string, name?: string): KubeManifest {
  const found = manifests.filter(
    (m) => m.kind === kind && (name === undefined || m.metadata.name === name),
  );
  if (found.length !== 1) {
    const present = manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ');
    throw new Error(
      `expected one ${kind}${name ? `/${name}` : ''}, found ${found.length} among: ${present}`,
    );
  }
  return found[0]!;
}

export const kinds = (manifests: KubeManifest[]): string[] =>
  manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort();
