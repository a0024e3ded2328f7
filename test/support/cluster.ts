import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import { waitFor } from './processes.js';
import { tool } from './tools.js';

const execFileAsync = promisify(execFile);

let shared: Promise<ControlPlane> | undefined;

/** The control plane shared by every integration test of this run, started on first use. */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= startControlPlane();
  return shared;
}

/** Stops the shared control plane, if this run started one (a mocha root hook calls this). */
export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const controlPlane = await shared.catch(() => undefined);
  shared = undefined;
  await controlPlane?.stop();
}

export function kubeConfigFor(controlPlane: ControlPlane): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(controlPlane.kubeconfig);
  return kc;
}

/** Runs the kubectl that tools/ built against a control plane; rejects with its stderr. */
export async function kubectl(
  controlPlane: ControlPlane,
  args: string[],
  input?: string,
): Promise<string> {
  const child = execFileAsync(tool('KUBECTL'), ['--kubeconfig', controlPlane.kubeconfig, ...args], {
    maxBuffer: 16 * 1024 * 1024,
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    return (await child).stdout;
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${stderr?.trim() || message}`, {
      cause: error,
    });
  }
}

let namespaceCounter = 0;

/** A fresh namespace for one test suite; returns its name. */
export async function createTestNamespace(kc: k8s.KubeConfig, prefix: string): Promise<string> {
  const name = `${prefix}-${process.pid}-${++namespaceCounter}`;
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

export async function deleteTestNamespace(kc: k8s.KubeConfig, name: string): Promise<void> {
  await kc
    .makeApiClient(k8s.CoreV1Api)
    .deleteNamespace({ name })
    .catch((error: unknown) => {
      if ((error as { code?: number }).code !== 404) throw error;
    });
}

/**
 * The HTTP status a request gets (200 when it succeeds). 429 is API Priority and Fairness
 * shedding load on a busy machine, not an answer about permissions: it asks again until the
 * API server decides.
 */
export async function httpStatusOf(request: () => Promise<unknown>): Promise<number> {
  let last = 0;
  return waitFor(
    async () => {
      last = await request().then(
        () => 200,
        (error: { code?: number }) => error.code ?? 0,
      );
      return last === 429 ? 0 : last;
    },
    30_000,
    'an answer other than 429 Too Many Requests',
    () => `HTTP ${last}`,
  );
}
