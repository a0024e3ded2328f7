import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.js';
import { errorMessage, silentLogger } from './logger.js';

/**
 * The HTTP endpoints a kubelet and Prometheus poll: `/healthz` (the process answers, and every
 * liveness check passes), `/readyz` (every readiness check passes) and `/metrics`.
 */

export interface CheckResult {
  ready: boolean;
  /** Why the check is not ready, or what it currently reports when it is. */
  message: string;
}

/**
 * One condition of readiness, owned by the component that knows it (informer caches synced, the
 * driver's socket listening, ...). A replica standing by for leader election is healthy and
 * should report ready: making standbys unready would stall every rolling update.
 */
export interface ReadinessCheck {
  readonly name: string;
  check(): CheckResult | Promise<CheckResult>;
}

/** A readiness check that a component flips when its state changes. */
export class ReadinessGate implements ReadinessCheck {
  private state: CheckResult;

  constructor(
    readonly name: string,
    notReadyMessage: string,
  ) {
    this.state = { ready: false, message: notReadyMessage };
  }

  markReady(message = 'ok'): void {
    this.state = { ready: true, message };
  }

  markNotReady(message: string): void {
    this.state = { ready: false, message };
  }

  check(): CheckResult {
    return this.state;
  }
}

export interface ListenAddress {
  /** undefined: every interface. */
  host: string | undefined;
  port: number;
}

/** Parses `host:port`, `:port` or `[ipv6]:port`, the form Kubernetes components take. */
export function parseListenAddress(address: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new Error(
      `invalid listen address "${address}": expected host:port, :port or [ipv6]:port with a port from 0 to 65535`,
    );
  }
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

export interface HealthServerOptions {
  /** Where to listen, e.g. `:8080` or `127.0.0.1:0` (an ephemeral port). */
  address: string;
  /** Served on /metrics; without it /metrics answers 404. */
  registry?: Registry;
  readiness?: readonly ReadinessCheck[];
  /**
   * What /healthz and /livez require beyond the process answering. Only for conditions a
   * restart of the container can cure: a failing liveness probe gets the container killed.
   */
  liveness?: readonly ReadinessCheck[];
  /** A check that takes longer counts as not ready; kubelet's probe timeout is 1 s by default. */
  checkTimeoutMs?: number;
  logger?: Logger;
}

export interface HealthServer {
  /** The bound port (useful when the address asked for port 0). */
  readonly port: number;
  /** `http://host:port` for local callers. */
  readonly url: string;
  close(): Promise<void>;
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ready: false, message: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(() => check.check())
        .catch((error: unknown) => ({ ready: false, message: errorMessage(error) })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The body lists every check, so `kubectl describe pod` shows which one failed. */
export async function evaluateReadiness(
  checks: readonly ReadinessCheck[],
  timeoutMs: number,
  endpoint = 'readyz',
): Promise<{ ready: boolean; body: string }> {
  const results = await Promise.all(checks.map((check) => runCheck(check, timeoutMs)));
  const lines = results.map(
    (result, i) => `[${result.ready ? '+' : '-'}]${checks[i]!.name} ${result.message}`,
  );
  const ready = results.every((result) => result.ready);
  lines.push(`${endpoint} check ${ready ? 'passed' : 'failed'}`);
  return { ready, body: `${lines.join('\n')}\n` };
}

/** A host a local client can dial for a server listening on `host`. */
function localHost(host: string | undefined): string {
  if (host === undefined || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { host, port } = parseListenAddress(options.address);
  const readiness = options.readiness ?? [];
  const liveness = options.liveness ?? [];
  const timeoutMs = options.checkTimeoutMs ?? 1000;
  const logger = options.logger ?? silentLogger();

  const reply = (
    res: http.ServerResponse,
    status: number,
    body: string,
    contentType = 'text/plain; charset=utf-8',
  ) => {
    res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      reply(res, 405, `method ${req.method} not allowed\n`);
      return;
    }
    const handle = async () => {
      switch (path) {
        case '/healthz':
        case '/livez': {
          if (liveness.length === 0) {
            reply(res, 200, 'ok\n');
            return;
          }
          const { ready, body } = await evaluateReadiness(liveness, timeoutMs, path.slice(1));
          reply(res, ready ? 200 : 503, body);
          return;
        }
        case '/readyz': {
          const { ready, body } = await evaluateReadiness(readiness, timeoutMs);
          reply(res, ready ? 200 : 503, body);
          return;
        }
        case '/metrics':
          if (!options.registry) {
            reply(res, 404, 'metrics are not served by this process\n');
            return;
          }
          reply(res, 200, await options.registry.metrics(), options.registry.contentType);
          return;
        default:
          reply(res, 404, `no handler for ${path}; try /healthz, /readyz or /metrics\n`);
      }
    };
    handle().catch((error: unknown) => {
      logger.error('health endpoint failed', { path, error: errorMessage(error) });
      if (!res.headersSent) reply(res, 500, `${errorMessage(error)}\n`);
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen on ${options.address} for /healthz, /readyz and /metrics: ${error.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const urlHost = localHost(host);
  logger.info('serving /healthz, /readyz and /metrics', {
    address: options.address,
    port: bound.port,
  });

  return {
    port: bound.port,
    url: `http://${urlHost}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
