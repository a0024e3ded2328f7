/**
 * HTTP/1.1 to the API server over node:http(s), with one keep-alive connection pool per
 * client and the TLS settings and credential of a ClusterAccess.
 */
import http from 'node:http';
import https from 'node:https';
import type { ClusterAccess } from './kubeconfig.js';

export interface TransportRequest {
  method: string;
  /** The path and query, e.g. `/api/v1/pods?watch=true`. */
  path: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** The request fails once this long passes with nothing sent or received (a hung connection). */
  timeoutMs?: number;
}

export interface TransportResponse {
  status: number;
  /** The whole body as text. */
  text(): Promise<string>;
  /** The body as it arrives (a watch). Ends with an error when the request is aborted. */
  chunks(): AsyncIterable<Buffer>;
}

/** A request that sent and received nothing for its timeout. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';

  constructor(request: TransportRequest, ms: number) {
    super(`${request.method} ${request.path}: no response within ${ms} ms`);
  }
}

export class Transport {
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private readonly origin: URL;

  constructor(private readonly access: ClusterAccess) {
    this.origin = new URL(access.server);
    this.secure = this.origin.protocol === 'https:';
    this.agent = this.secure
      ? new https.Agent({ keepAlive: true, ...access.tls })
      : new http.Agent({ keepAlive: true });
  }

  get server(): string {
    return this.access.server;
  }

  async send(request: TransportRequest): Promise<TransportResponse> {
    const authorization = await this.access.authorization();
    const headers: Record<string, string> = { ...request.headers };
    if (authorization) headers.Authorization = authorization;
    if (request.body !== undefined) {
      headers['Content-Length'] = String(Buffer.byteLength(request.body));
    }
    const prefix = this.origin.pathname.replace(/\/+$/, '');
    const options: http.RequestOptions = {
      method: request.method,
      host: this.origin.hostname.replace(/^\[|\]$/g, ''),
      port: this.origin.port || (this.secure ? 443 : 80),
      path: prefix + request.path,
      headers,
      agent: this.agent,
      ...(request.signal ? { signal: request.signal } : {}),
    };
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = (this.secure ? https : http).request(options, resolve);
      req.on('error', reject);
      if (request.timeoutMs !== undefined) {
        const ms = request.timeoutMs;
        req.setTimeout(ms, () => req.destroy(new RequestTimeoutError(request, ms)));
      }
      req.end(request.body);
    });
    return {
      status: response.statusCode ?? 0,
      text: () =>
        new Promise<string>((resolve, reject) => {
          const parts: Buffer[] = [];
          response.on('data', (chunk: Buffer) => parts.push(chunk));
          response.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
          response.on('error', reject);
        }),
      chunks: () => response as AsyncIterable<Buffer>,
    };
  }

  /** Closes idle pooled connections (in-flight requests finish). */
  close(): void {
    this.agent.destroy();
  }
}
