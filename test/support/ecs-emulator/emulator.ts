import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EcsApiError } from './errors.js';
import { Faults } from './faults.js';
import {
  EcsModel,
  defaultTimings,
  ecsActions,
  idempotentActions,
  type Body,
  type EcsAction,
  type Params,
  type SnapshotGroupLimits,
  type Timings,
} from './model.js';
import {
  isV3,
  parseQuery,
  requestNonce,
  requestTimestamp,
  verifyV2,
  verifyV3,
  type KnownCredential,
  type SignedRequest,
} from './signature.js';

/**
 * An ECS endpoint on loopback that speaks the real wire protocol: signed requests (V3
 * ACS3-HMAC-SHA256, or the legacy HMAC-SHA1), PascalCase JSON, ECS error bodies and status
 * codes, ClientToken idempotency, per-API rate limits and injectable faults.
 */

export interface EmulatorOptions {
  /** Access key id -> secret (and optional STS token) the emulator accepts. */
  credentials: Record<string, KnownCredential>;
  host?: string;
  port?: number;
  regions?: Record<string, string[]>;
  timings?: Partial<Timings>;
  snapshotQuotaPerDisk?: number;
  snapshotNeverAttachedDisks?: boolean;
  snapshotGroupLimits?: SnapshotGroupLimits;
  /** How far a request's timestamp may be from the emulator's clock. */
  maxClockSkewMs?: number;
  now?: () => number;
}

export interface CallRecord {
  action: string;
  status: number;
  /** The error code, absent on success. */
  code?: string;
  /** ECS made the change, even if the reply was an injected error. */
  applied: boolean;
  at: number;
}

export const ECS_VERSION = '2014-05-26';
const NONCE_WINDOW_MS = 15 * 60_000;
const rpcSigningParameters = new Set([
  'Action',
  'Version',
  'Format',
  'Timestamp',
  'SignatureNonce',
  'SignatureMethod',
  'SignatureVersion',
  'AccessKeyId',
  'SecurityToken',
  'Signature',
]);

export const defaultRegions: Record<string, string[]> = {
  'cn-hangzhou': ['cn-hangzhou-g', 'cn-hangzhou-h', 'cn-hangzhou-i'],
  'cn-beijing': ['cn-beijing-h', 'cn-beijing-i'],
};

export class EcsEmulator {
  readonly model: EcsModel;
  readonly faults: Faults;
  readonly calls: CallRecord[] = [];
  private readonly server: http.Server;
  private readonly credentials: Map<string, KnownCredential>;
  private readonly nonces = new Map<string, number>();
  private readonly idempotency = new Map<string, { fingerprint: string; body: Body }>();
  private readonly now: () => number;
  private readonly maxClockSkewMs: number;

  constructor(private readonly options: EmulatorOptions) {
    this.now = options.now ?? Date.now;
    this.maxClockSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
    this.credentials = new Map(Object.entries(options.credentials));
    this.model = new EcsModel({
      regions: options.regions ?? defaultRegions,
      timings: {
        ...defaultTimings,
        ...Object.fromEntries(
          Object.entries(options.timings ?? {}).filter(([, v]) => v !== undefined),
        ),
      },
      snapshotQuotaPerDisk: options.snapshotQuotaPerDisk ?? 256,
      snapshotNeverAttachedDisks: options.snapshotNeverAttachedDisks ?? false,
      snapshotGroupLimits: options.snapshotGroupLimits,
      now: this.now,
    });
    this.faults = new Faults(this.now);
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(error));
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `host:port`, the form the SDK's `endpoint` takes. */
  get endpoint(): string {
    return `${this.options.host ?? '127.0.0.1'}:${this.port}`;
  }

  /** Calls received, optionally only one action's and only those that succeeded. */
  callCount(action?: string, { succeeded }: { succeeded?: boolean } = {}): number {
    return this.calls.filter(
      (c) =>
        (!action || c.action === action) &&
        (succeeded === undefined || (c.status === 200) === succeeded),
    ).length;
  }

  /** Call counts per action, for reports. */
  callSummary(): Record<string, { ok: number; failed: number }> {
    const summary: Record<string, { ok: number; failed: number }> = {};
    for (const call of this.calls) {
      const entry = (summary[call.action] ??= { ok: 0, failed: 0 });
      if (call.status === 200) entry.ok += 1;
      else entry.failed += 1;
    }
    return summary;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    if (path.startsWith('/__emulator/')) {
      await this.admin(req.method ?? 'GET', path, body, res);
      return;
    }
    const request: SignedRequest = {
      method: req.method ?? 'GET',
      path,
      query: parseQuery(queryAt < 0 ? '' : url.slice(queryAt + 1)),
      headers: req.headers,
      body,
    };
    const action =
      (req.headers['x-acs-action'] as string | undefined) ?? request.query.Action ?? '';
    const requestId = randomUUID().toUpperCase();
    const progress = { applied: false };
    try {
      const result = await this.process(action, request, progress);
      this.calls.push({ action, status: 200, applied: true, at: this.now() });
      this.reply(res, 200, { RequestId: requestId, ...result });
    } catch (error) {
      if (!(error instanceof EcsApiError)) throw error;
      this.calls.push({
        action,
        status: error.status,
        code: error.code,
        applied: progress.applied,
        at: this.now(),
      });
      const headers: Record<string, string> = {};
      if (error.retryAfterMs !== undefined)
        headers['x-acs-retry-after'] = String(error.retryAfterMs);
      this.reply(
        res,
        error.status,
        {
          RequestId: requestId,
          HostId: `ecs.${this.endpoint}`,
          Code: error.code,
          Message: error.message,
          Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(error.code)}&product=Ecs`,
        },
        headers,
      );
    }
  }

  private reply(
    res: http.ServerResponse,
    status: number,
    body: Body,
    headers: Record<string, string> = {},
  ): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  }

  private async process(
    action: string,
    request: SignedRequest,
    progress: { applied: boolean },
  ): Promise<Body> {
    const check = isV3(request)
      ? verifyV3(request, (id) => this.credentials.get(id))
      : verifyV2(request, (id) => this.credentials.get(id));
    if (!check.ok) {
      throw new EcsApiError(
        check.code === 'InvalidAccessKeyId.NotFound' ? 404 : 400,
        check.code,
        check.message,
      );
    }
    this.checkFreshness(request);
    if (!action)
      throw new EcsApiError(400, 'MissingParameter', 'The request names no action (x-acs-action).');
    const version =
      (request.headers['x-acs-version'] as string | undefined) ?? request.query.Version;
    if (version !== ECS_VERSION) {
      throw new EcsApiError(
        400,
        'InvalidVersion',
        `ECS serves API version ${ECS_VERSION}, not "${version ?? ''}".`,
      );
    }
    if (!(ecsActions as readonly string[]).includes(action)) {
      throw new EcsApiError(
        404,
        'InvalidAction.NotFound',
        `Specified api "${action}" is not found, please check your url and method.`,
      );
    }
    const params = this.apiParams(request.query);
    const rejected = this.faults.admit(action);
    if (rejected) throw rejected;
    await this.inject(action, 'before');
    const result = this.invoke(check.accessKeyId, action as EcsAction, params);
    progress.applied = true;
    await this.inject(action, 'after');
    return result;
  }

  private async inject(action: string, phase: 'before' | 'after'): Promise<void> {
    const decision = this.faults.decide(action, phase);
    if (decision.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, decision.delayMs));
    if (decision.error) throw decision.error;
  }

  /** Request parameters without the ones the RPC signing scheme adds. */
  private apiParams(query: Params): Params {
    return Object.fromEntries(
      Object.entries(query).filter(([key]) => !rpcSigningParameters.has(key)),
    );
  }

  private checkFreshness(request: SignedRequest): void {
    const now = this.now();
    const stamp = requestTimestamp(request);
    const at = stamp ? Date.parse(stamp) : NaN;
    if (Number.isNaN(at) || Math.abs(now - at) > this.maxClockSkewMs) {
      throw new EcsApiError(
        400,
        'InvalidTimeStamp.Expired',
        `Specified time stamp or date value is expired: "${stamp ?? ''}".`,
      );
    }
    const nonce = requestNonce(request);
    if (!nonce)
      throw new EcsApiError(
        400,
        'MissingSignatureNonce',
        'The request carries no signature nonce.',
      );
    for (const [seen, when] of this.nonces) {
      if (now - when > NONCE_WINDOW_MS) this.nonces.delete(seen);
    }
    if (this.nonces.has(nonce)) {
      throw new EcsApiError(
        400,
        'SignatureNonceUsed',
        'Specified signature nonce was used already.',
      );
    }
    this.nonces.set(nonce, now);
  }

  private invoke(accessKeyId: string, action: EcsAction, params: Params): Body {
    const token = params.ClientToken;
    if (!token || !idempotentActions.has(action)) return this.model[action](params);
    const key = `${accessKeyId}\n${action}\n${token}`;
    const fingerprint = JSON.stringify(
      Object.entries(params)
        .filter(([name]) => name !== 'ClientToken')
        .sort(([a], [b]) => (a < b ? -1 : 1)),
    );
    const previous = this.idempotency.get(key);
    if (previous) {
      if (previous.fingerprint !== fingerprint) {
        throw new EcsApiError(
          400,
          'IdempotentParameterMismatch',
          'The specified parameters are different from before with the same ClientToken.',
        );
      }
      return previous.body;
    }
    const body = this.model[action](params);
    this.idempotency.set(key, { fingerprint, body });
    return body;
  }

  // ---- the admin endpoint, for running the emulator by hand ----

  private async admin(
    method: string,
    path: string,
    body: Buffer,
    res: http.ServerResponse,
  ): Promise<void> {
    let input: Record<string, unknown> = {};
    try {
      if (body.length > 0) input = JSON.parse(body.toString()) as Record<string, unknown>;
      const result = this.adminAction(`${method} ${path}`, input);
      this.reply(res, 200, result);
    } catch (error) {
      this.reply(res, 400, { error: (error as Error).message });
    }
  }

  private adminAction(route: string, input: Record<string, unknown>): Body {
    switch (route) {
      case 'GET /__emulator/state':
        return this.model.describe();
      case 'GET /__emulator/calls':
        return this.callSummary();
      case 'POST /__emulator/instances':
        return { ...this.model.addInstance(String(input.regionId), String(input.zoneId)) };
      case 'POST /__emulator/disks': {
        const disk = this.model.addDisk(input as unknown as Parameters<EcsModel['addDisk']>[0]);
        return { DiskId: disk.id };
      }
      case 'POST /__emulator/fail-snapshot-group':
        this.model.failSnapshotGroup(String(input.snapshotGroupId));
        return { failed: String(input.snapshotGroupId) };
      case 'POST /__emulator/hold-disk-creation':
        this.model.holdDiskCreation = input.hold !== false;
        if (!this.model.holdDiskCreation) this.model.releaseDisks();
        return { hold: this.model.holdDiskCreation };
      case 'POST /__emulator/faults':
        this.applyFaults(input);
        return { injected: this.faults.injected };
      default:
        throw new Error(`unknown admin route ${route}; try GET /__emulator/state`);
    }
  }

  private applyFaults(input: Record<string, unknown>): void {
    if (input.clear) this.faults.clear();
    const limits = (input.rateLimits ?? {}) as Record<string, number>;
    for (const [action, perSecond] of Object.entries(limits))
      this.faults.setRateLimit(action, { perSecond });
    if (input.throttleNext)
      this.faults.throttleNext(input.throttleNext as Parameters<Faults['throttleNext']>[0]);
    if (input.serverErrors)
      this.faults.failRandomly(input.serverErrors as Parameters<Faults['failRandomly']>[0]);
    if (input.latency) this.faults.delay(input.latency as Parameters<Faults['delay']>[0]);
  }
}
