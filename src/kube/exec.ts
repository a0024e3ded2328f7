/**
 * Running a command in a container through the pods/exec API, as `kubectl exec` does: a
 * WebSocket to the API server (client-node's Exec, channel protocol v4), stdout and stderr
 * collected, the exit code read from the status channel. client-node is imported on the first
 * exec only: a process that runs no hooks never loads it (about 80 MiB, see bench/idle).
 */
import { Writable } from 'node:stream';
import type { Exec, KubeConfig, V1Status } from '@kubernetes/client-node';

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  command: readonly string[];
  timeoutMs: number;
}

export interface ExecResult {
  /** The command's exit code; absent when it did not finish (timeout, exec refused). */
  exitCode?: number;
  /** The end of stdout and stderr, interleaved as received. */
  output: string;
  /** Why there is no exit code. */
  error?: string;
  timedOut?: boolean;
}

/** Runs commands in containers; `WebSocketPodExecutor` does it for real. */
export interface PodExecutor {
  exec(request: ExecRequest): Promise<ExecResult>;
}

/** How much of a command's output is kept: enough to read an error, never a flood. */
export const MAX_EXEC_OUTPUT = 4096;

class TailBuffer extends Writable {
  private text = '';

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text = (this.text + chunk.toString('utf8')).slice(-MAX_EXEC_OUTPUT);
    done();
  }

  get tail(): string {
    return this.text;
  }
}

/** The exit code a v4 exec status reports: Success is 0, NonZeroExitCode carries its code. */
export function exitCodeOf(status: V1Status): number | undefined {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = cause?.message !== undefined ? Number(cause.message) : NaN;
  return Number.isInteger(code) ? code : undefined;
}

/** Where the executor finds its credentials: a loaded KubeConfig, or the kubeconfig to load. */
export type ExecKubeConfig = KubeConfig | { kubeconfigFile?: string };

export class WebSocketPodExecutor implements PodExecutor {
  private execApi: Promise<Exec> | undefined;

  constructor(private readonly source: ExecKubeConfig) {}

  private api(): Promise<Exec> {
    this.execApi ??= import('@kubernetes/client-node').then((k8s) => {
      let kubeConfig = this.source;
      if (!(kubeConfig instanceof k8s.KubeConfig)) {
        const file = (this.source as { kubeconfigFile?: string }).kubeconfigFile;
        kubeConfig = new k8s.KubeConfig();
        if (file) kubeConfig.loadFromFile(file);
        else kubeConfig.loadFromDefault();
      }
      return new k8s.Exec(kubeConfig);
    });
    return this.execApi;
  }

  async exec(request: ExecRequest): Promise<ExecResult> {
    let execApi: Exec;
    try {
      execApi = await this.api();
    } catch (error) {
      this.execApi = undefined;
      return {
        output: '',
        error: `cannot load the kubeconfig for exec: ${execErrorMessage(error)}`,
      };
    }
    return this.run(execApi, request);
  }

  private run(execApi: Exec, request: ExecRequest): Promise<ExecResult> {
    const out = new TailBuffer();
    return new Promise<ExecResult>((resolve) => {
      let settled = false;
      let socket: { close(): void } | undefined;
      const finish = (result: Omit<ExecResult, 'output'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket?.close();
        resolve({ ...result, output: out.tail });
      };
      const timer = setTimeout(
        () =>
          finish({
            timedOut: true,
            error: `did not finish within ${Math.round(request.timeoutMs / 1000)} s`,
          }),
        request.timeoutMs,
      );
      execApi
        .exec(
          request.namespace,
          request.pod,
          request.container,
          [...request.command],
          out,
          out,
          null,
          false,
          (status) => {
            const exitCode = exitCodeOf(status);
            finish(
              exitCode !== undefined
                ? { exitCode }
                : { error: status.message ?? status.reason ?? 'exec failed' },
            );
          },
        )
        .then((ws) => {
          socket = ws;
          if (settled) ws.close();
          // The API server closes the stream once the status is sent; a close without a
          // status is a broken session.
          ws.on('close', () => finish({ error: 'the exec session closed without an exit status' }));
        })
        .catch((error: unknown) => finish({ error: execErrorMessage(error) }));
    });
  }
}

/**
 * What a failed exec connection means. client-node rejects a refused upgrade with the ws
 * message "Unexpected server response: <status>"; the statuses a user can act on are named.
 */
export function execErrorMessage(error: unknown): string {
  let text = String(error);
  if (error instanceof Error) text = error.message;
  else if (typeof error === 'object' && error !== null) {
    const e = error as { message?: unknown; error?: { message?: unknown } };
    if (typeof e.error?.message === 'string') text = e.error.message;
    else if (typeof e.message === 'string') text = e.message;
  }
  const status = /Unexpected server response: (\d+)/.exec(text)?.[1];
  if (status === '403') {
    return `pods/exec was refused (HTTP 403): the controller's ServiceAccount needs create and get on pods/exec (the chart grants them with hooks.enabled=true)`;
  }
  if (status === '404') return 'pods/exec found no such pod (HTTP 404): it is gone';
  if (status === '400') {
    return 'pods/exec was rejected (HTTP 400): the container is not running, or the command is invalid';
  }
  return text;
}
