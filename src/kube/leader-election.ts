import type { KubeClient } from './client.js';
import { isAlreadyExists, isConflict } from './errors.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { Leases, type KubeObject } from './resource.js';
import { abortableSleep } from '../util/sleep.js';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectionOptions {
  client: KubeClient;
  /** Where the coordination.k8s.io/v1 Lease lives. */
  namespace: string;
  name: string;
  /** Unique per candidate, e.g. the pod name plus a random suffix. */
  identity: string;
  /** How long others wait, after last seeing the lease change, before taking it over. */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long gives up; must be below leaseDurationMs. */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew. */
  retryPeriodMs?: number;
  /** On a clean stop, hand the lease over at once instead of letting it expire. */
  releaseOnCancel?: boolean;
  /** Called when this candidate becomes leader; `signal` aborts when leadership ends. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called once leadership ends (lost or stopped); the lease is released only after it returns. */
  onStoppedLeading?(): void | Promise<void>;
  /** Called whenever the observed holder changes (including to this candidate). */
  onNewLeader?(identity: string): void;
  logger?: Logger;
}

/**
 * Lease-based leader election with client-go's rules: a candidate takes the lease only when
 * it is free or has not changed for a whole lease duration as measured on the candidate's own
 * clock (so clocks need not agree); the leader renews every retry period and steps down when
 * it has not renewed for the renew deadline. The leader counts that deadline from the moment
 * it *sent* its last successful renewal, which is never later than when others saw it, so a
 * leader always stops before anyone else can start (margin: lease duration - renew deadline).
 */
export class LeaderElector {
  private readonly client: KubeClient;
  private readonly options: LeaderElectionOptions;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly logger: Logger;
  private observed: { record: string; holder: string; at: number; lease?: Lease } | undefined;
  private leading = false;
  private reportedLeader: string | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.client = options.client;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseDurationMs) {
      throw new Error(
        'leader election: the renew deadline must be shorter than the lease duration',
      );
    }
    if (this.retryPeriodMs >= this.renewDeadlineMs) {
      throw new Error('leader election: the retry period must be shorter than the renew deadline');
    }
    this.logger = (options.logger ?? silentLogger()).child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen on the lease (`undefined` before the first read). */
  get leader(): string | undefined {
    return this.observed?.holder || undefined;
  }

  /**
   * Campaigns until `signal` aborts or leadership, once gained, is lost. Resolves with
   * `'lost'` if the lease was lost and `'stopped'` if `signal` ended the run.
   */
  async run(signal: AbortSignal): Promise<'lost' | 'stopped'> {
    while (!signal.aborted) {
      const sentAt = performance.now();
      if (await untilAborted(this.tryAcquireOrRenew(), signal, false))
        return this.lead(signal, sentAt);
      await abortableSleep(jittered(this.retryPeriodMs), signal);
    }
    return 'stopped';
  }

  private async lead(outer: AbortSignal, acquiredSentAt: number): Promise<'lost' | 'stopped'> {
    this.leading = true;
    this.logger.info('became leader');
    const leadership = new AbortController();
    let lost = false;
    const loseLeadership = () => {
      if (leadership.signal.aborted) return;
      lost = !outer.aborted;
      leadership.abort();
    };
    // the watchdog fires even when a renewal request hangs
    let watchdog = setTimeout(
      loseLeadership,
      Math.max(0, acquiredSentAt + this.renewDeadlineMs - performance.now()),
    );
    const onOuterAbort = () => leadership.abort();
    outer.addEventListener('abort', onOuterAbort, { once: true });
    try {
      void Promise.resolve()
        .then(() => this.options.onStartedLeading(leadership.signal))
        .catch((error: unknown) => {
          this.logger.error('onStartedLeading failed; stepping down', {
            error: errorMessage(error),
          });
          loseLeadership();
        });
      while (!leadership.signal.aborted) {
        await abortableSleep(this.retryPeriodMs, leadership.signal);
        if (leadership.signal.aborted) break;
        const sentAt = performance.now();
        // a hung request must not keep a leader that already stepped down in this loop
        const renewed = await untilAborted(this.tryAcquireOrRenew(), leadership.signal, false);
        if (leadership.signal.aborted) break;
        if (renewed) {
          clearTimeout(watchdog);
          watchdog = setTimeout(
            loseLeadership,
            Math.max(0, sentAt + this.renewDeadlineMs - performance.now()),
          );
        } else if (this.observed && this.observed.holder !== this.options.identity) {
          loseLeadership();
        }
      }
    } finally {
      clearTimeout(watchdog);
      outer.removeEventListener('abort', onOuterAbort);
      this.leading = false;
      if (lost) this.logger.warn('lost leadership');
      else this.logger.info('stopped leading');
      try {
        await this.options.onStoppedLeading?.();
      } catch (error) {
        this.logger.error('onStoppedLeading failed', { error: errorMessage(error) });
      }
    }
    if (!lost && this.options.releaseOnCancel !== false) await this.release();
    return lost ? 'lost' : 'stopped';
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = new Date();
    let lease: Lease | undefined;
    try {
      lease = await this.client.get<Lease>(Leases, name, namespace);
    } catch (error) {
      this.logger.warn('could not read the lease', { error: errorMessage(error) });
      return false;
    }
    const spec: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseDurationMs / 1000)),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    if (!lease) {
      try {
        const created = await this.client.create<Lease>(Leases, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec,
        });
        this.observe(created);
        return true;
      } catch (error) {
        if (!isAlreadyExists(error))
          this.logger.warn('could not create the lease', { error: errorMessage(error) });
        return false;
      }
    }
    this.observe(lease);
    const current = lease.spec ?? {};
    const heldByOther = !!current.holderIdentity && current.holderIdentity !== identity;
    if (heldByOther && this.observed!.at + this.leaseDurationMs > performance.now()) return false;
    if (current.holderIdentity === identity) {
      spec.acquireTime = current.acquireTime ?? spec.acquireTime;
      spec.leaseTransitions = current.leaseTransitions ?? 0;
    } else {
      spec.leaseTransitions = (current.leaseTransitions ?? 0) + 1;
    }
    try {
      const updated = await this.client.replace<Lease>(Leases, { ...lease, spec });
      this.observe(updated);
      return true;
    } catch (error) {
      if (!isConflict(error))
        this.logger.warn('could not update the lease', { error: errorMessage(error) });
      return false;
    }
  }

  /** Gives the lease up so another candidate need not wait for it to expire. */
  private async release(): Promise<void> {
    const lease = this.observed?.lease;
    if (!lease || lease.spec?.holderIdentity !== this.options.identity) return;
    const now = microTime(new Date());
    try {
      await this.client.replace<Lease>(Leases, {
        ...lease,
        spec: {
          holderIdentity: '',
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: lease.spec?.leaseTransitions ?? 0,
        },
      });
      this.logger.info('released the lease');
    } catch (error) {
      this.logger.warn('could not release the lease', { error: errorMessage(error) });
    }
  }

  private observe(lease: Lease): void {
    const spec = lease.spec ?? {};
    const record = JSON.stringify([
      spec.holderIdentity,
      spec.renewTime,
      spec.acquireTime,
      spec.leaseTransitions,
    ]);
    const holder = spec.holderIdentity ?? '';
    if (this.observed?.record !== record) {
      this.observed = { record, holder, at: performance.now(), lease };
    } else {
      this.observed.lease = lease;
    }
    if (holder && holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      this.options.onNewLeader?.(holder);
    }
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, onAbort: T): Promise<T> {
  if (signal.aborted) return Promise.resolve(onAbort);
  return new Promise((resolve, reject) => {
    const abort = () => resolve(onAbort);
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(error as Error);
      },
    );
  });
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Between the period and 1.2 times it, as client-go's JitterUntil with factor 1.2. */
function jittered(ms: number): number {
  return ms * (1 + 0.2 * Math.random());
}
