/**
 * Co-existing with upstream's snapshot-controller, csi-snapshotter and external-provisioner:
 * an embedded part does not act while its upstream counterpart holds its leader-election Lease,
 * so one cluster never has two writers of the same VolumeSnapshots, contents or PVs.
 */
import type { KubeClient } from './client.js';
import type { Lease } from './leader-election.js';
import type { Runnable } from './manager.js';
import { ApiError } from './errors.js';
import { Leases } from './resource.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { abortableSleep } from '../util/sleep.js';

/** csi-lib-utils' sanitizeName: what its leader election does to a Lease name before use. */
export function sanitizeLeaseName(name: string): string {
  const sanitized = name.replace(/[^a-zA-Z0-9-]/g, '-');
  return sanitized.endsWith('-') ? `${sanitized}X` : sanitized;
}

/** The Lease names upstream's components hold while they lead, for driver `driverName`. */
export const upstreamLeaseNames = {
  /** snapshot-controller: one per cluster, whatever the drivers. */
  snapshotController: (): string => 'snapshot-controller-leader',
  /** csi-snapshotter: `external-snapshotter-leader-<driver>`, "/" replaced, then sanitized. */
  snapshotter: (driverName: string): string =>
    sanitizeLeaseName(`external-snapshotter-leader-${driverName.replaceAll('/', '-')}`),
  /** external-provisioner: the driver name, "/" replaced, then sanitized. */
  provisioner: (driverName: string): string => sanitizeLeaseName(driverName.replaceAll('/', '-')),
};

/** A Lease somebody holds, and until when (its renewTime plus its duration). */
export interface HeldLease {
  namespace: string;
  name: string;
  holder: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/**
 * Whether `lease` is held at `nowMs`: it names a holder and its last renewal (or acquisition)
 * plus its duration lies in the future. Compared with this process's clock, so a holder's clock
 * running behind shortens what we see by as much; a released lease (no holder) is free.
 */
export function heldLease(lease: Lease, nowMs: number): HeldLease | undefined {
  const spec = lease.spec ?? {};
  if (!spec.holderIdentity) return undefined;
  const since = Date.parse(spec.renewTime ?? spec.acquireTime ?? '');
  if (!Number.isFinite(since)) return undefined;
  const expiresAt = since + (spec.leaseDurationSeconds ?? 0) * 1000;
  if (expiresAt <= nowMs) return undefined;
  return {
    namespace: lease.metadata?.namespace ?? '',
    name: lease.metadata?.name ?? '',
    holder: spec.holderIdentity,
    expiresAt,
  };
}

/**
 * The held Lease named `name` in `namespaces` (every namespace when absent), the one held
 * longest if several are. Throws when the Leases cannot be read.
 */
export async function findHeldLease(
  client: KubeClient,
  name: string,
  namespaces: readonly string[] | undefined,
  nowMs: number,
): Promise<HeldLease | undefined> {
  let leases: Lease[];
  if (namespaces === undefined) {
    leases = (await client.list<Lease>(Leases, { fieldSelector: `metadata.name=${name}` })).items;
  } else {
    const found = await Promise.all(namespaces.map((ns) => client.get<Lease>(Leases, name, ns)));
    leases = found.filter((lease): lease is Lease => lease !== undefined);
  }
  let held: HeldLease | undefined;
  for (const lease of leases) {
    const candidate = heldLease(lease, nowMs);
    if (candidate && (!held || candidate.expiresAt > held.expiresAt)) held = candidate;
  }
  return held;
}

/** What a part reports about its upstream counterpart (for /readyz and metrics). */
export interface CoexistenceStatus {
  part: string;
  /** The upstream component whose Lease is checked. */
  upstream: string;
  state: 'checking' | 'acting' | 'deferring' | 'unchecked';
  message: string;
}

export interface DeferToUpstreamOptions {
  /** Our part, named as the flag that switches it off (`snapshot-controller`, `csi-snapshotter`). */
  part: string;
  /** The upstream component, e.g. `csi-snapshotter`. */
  upstream: string;
  leaseName: string;
  /** Where to look for the Lease; every namespace when absent. */
  namespaces?: readonly string[];
  client: KubeClient;
  /** A fresh instance of the part each time it may act again. */
  create: () => Runnable;
  /** How often the Lease is checked again (default 30 s). */
  periodMs?: number;
  now?: () => number;
  onStatus?: (status: CoexistenceStatus) => void;
  logger?: Logger;
}

/**
 * Runs a part only while no upstream counterpart holds its Lease, checking before the part
 * starts and every period after: a held Lease stops the part (after its reconciles in flight),
 * a Lease that expired or was released lets a fresh instance start. The next check comes as
 * soon as the Lease seen would expire, if that is sooner than the period. When the Leases
 * cannot be listed for lack of permission the part acts, with a warning saying what to grant:
 * refusing would leave the cluster without any controller.
 */
export class DeferToUpstream implements Runnable {
  readonly name: string;
  private readonly options: DeferToUpstreamOptions;
  private readonly logger: Logger;
  private readonly periodMs: number;
  private readonly now: () => number;
  private current: Runnable | undefined;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private lastStatus: CoexistenceStatus;
  private lastWarning: string | undefined;

  constructor(options: DeferToUpstreamOptions) {
    this.options = options;
    this.name = options.part;
    this.periodMs = options.periodMs ?? 30_000;
    this.now = options.now ?? Date.now;
    this.logger = (options.logger ?? silentLogger()).child({
      controller: options.part,
      upstream: options.upstream,
    });
    this.lastStatus = {
      part: options.part,
      upstream: options.upstream,
      state: 'checking',
      message: `not started: checking for a held ${options.upstream} Lease ${this.where()}`,
    };
  }

  get queueDepth(): number {
    return this.current?.queueDepth ?? 0;
  }

  get status(): CoexistenceStatus {
    return this.lastStatus;
  }

  async start(signal?: AbortSignal): Promise<void> {
    this.loop ??= this.run(signal);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    // the part stops now (its queue at once), not after a Lease check in flight
    const stopping = this.stopPart();
    await this.loop;
    await Promise.all([stopping, this.stopPart()]);
  }

  private where(): string {
    const { leaseName, namespaces } = this.options;
    return namespaces === undefined
      ? `"${leaseName}" (any namespace)`
      : `"${leaseName}" (namespaces ${namespaces.join(', ')})`;
  }

  private async run(lost: AbortSignal | undefined): Promise<void> {
    const halted = lost ? AbortSignal.any([lost, this.stopping.signal]) : this.stopping.signal;
    while (!halted.aborted) {
      const waitMs = await this.checkOnce(lost);
      await abortableSleep(waitMs, halted);
    }
  }

  /** One check and what follows from it; returns how long to wait before the next one. */
  private async checkOnce(lost: AbortSignal | undefined): Promise<number> {
    const { part, upstream, leaseName, namespaces, client } = this.options;
    let held: HeldLease | undefined;
    try {
      held = await findHeldLease(client, leaseName, namespaces, this.now());
    } catch (error) {
      if (error instanceof ApiError && error.code === 403) {
        this.warnOnce(
          `cannot check whether ${upstream} runs: listing Leases ${this.where()} is forbidden; ` +
            `${part} acts regardless. Grant list/get on coordination.k8s.io leases, or set ` +
            '--upstream-lease-namespaces to namespaces it may read',
          error,
        );
        this.report('unchecked', `acting; cannot read Leases ${this.where()}: forbidden`);
        await this.startPart(lost);
        // permissions change rarely: look again after a whole period, not sooner
        return this.periodMs;
      } else {
        // a transient failure changes nothing: keep acting, or keep waiting, and look again soon
        this.warnOnce(`could not check for a held ${upstream} Lease ${this.where()}`, error);
      }
      return Math.min(this.periodMs, 5_000);
    }
    this.lastWarning = undefined;
    if (this.stopping.signal.aborted || lost?.aborted) return 0;
    if (held) {
      const message =
        `${upstream} runs in this cluster: Lease ${held.namespace}/${held.name} is held by ` +
        `"${held.holder}" until ${new Date(held.expiresAt).toISOString()}, so ${part} does not ` +
        `act (stop ${upstream}, or run snapback with --${part}=false)`;
      if (this.lastStatus.state !== 'deferring') this.logger.warn(message);
      this.report('deferring', message);
      await this.stopPart();
      return Math.max(1, Math.min(this.periodMs, held.expiresAt - this.now() + 1_000));
    }
    if (this.lastStatus.state === 'deferring') {
      this.logger.info(`no ${upstream} holds Lease ${this.where()} any more; ${part} acts`);
    }
    this.report('acting', `acting; no ${upstream} holds Lease ${this.where()}`);
    await this.startPart(lost);
    return this.periodMs;
  }

  private report(state: CoexistenceStatus['state'], message: string): void {
    const { part, upstream } = this.options;
    this.lastStatus = { part, upstream, state, message };
    this.options.onStatus?.(this.lastStatus);
  }

  private warnOnce(message: string, error: unknown): void {
    const line = `${message}: ${errorMessage(error)}`;
    if (line === this.lastWarning) return;
    this.lastWarning = line;
    this.logger.warn(message, { error: errorMessage(error) });
  }

  private async startPart(lost: AbortSignal | undefined): Promise<void> {
    if (this.current || this.stopping.signal.aborted || lost?.aborted) return;
    const part = this.options.create();
    this.current = part;
    await part.start(lost);
  }

  private async stopPart(): Promise<void> {
    const part = this.current;
    this.current = undefined;
    await part?.stop();
  }
}
